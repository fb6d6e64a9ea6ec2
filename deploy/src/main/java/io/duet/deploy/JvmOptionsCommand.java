package io.duet.deploy;

import io.duet.service.ServiceRuntime;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

/**
 * {@code duet.jar jvm-options}: the JVM options a service jar is started with when something
 * other than {@code up} starts it directly (the ansible playbook), one a line: a Java argument
 * file, {@code java @FILE -jar prefill-service.jar ...}. The same options {@code up} gives
 * (the Vector API, the module access Hazelcast asks for, no relaunch), so that each instance
 * is one process whose pid is the JVM's, and the list lives in one place.
 */
@Command(name = "jvm-options", mixinStandardHelpOptions = true,
    description = "Prints the JVM options to start a service jar with directly, one a line "
        + "(a Java argument file: java @FILE -jar prefill-service.jar ...).")
final class JvmOptionsCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Override
  public Integer call() {
    PrintWriter out = spec.commandLine().getOut();
    ServiceRuntime.directLaunchFlags().forEach(out::println);
    out.flush();
    return 0;
  }
}
