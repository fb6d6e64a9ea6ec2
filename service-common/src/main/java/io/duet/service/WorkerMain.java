package io.duet.service;

import io.duet.cluster.ConfigFlags;
import io.duet.contract.Role;
import java.util.concurrent.Callable;
import picocli.CommandLine.Mixin;

/**
 * The command of a prefill or decode main: the configuration flags every Duet command takes,
 * then the worker's whole life as {@link ServiceRuntime#runWorker} runs it. Subclasses carry
 * the picocli {@code @Command} that names and describes the service.
 */
public abstract class WorkerMain implements Callable<Integer> {

  @Mixin
  private ConfigFlags flags;

  private final Role role;
  private final ServiceRuntime.WorkerFactory factory;

  protected WorkerMain(Role role, ServiceRuntime.WorkerFactory factory) {
    this.role = role;
    this.factory = factory;
  }

  @Override
  public Integer call() throws Exception {
    ServiceRuntime.runWorker(role, flags, factory);
    return 0;
  }
}
