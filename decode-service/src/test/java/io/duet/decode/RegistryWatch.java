package io.duet.decode;

import static io.duet.service.ServiceTests.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Registry;
import io.vertx.core.Vertx;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A registry and the instances it adds and removes, and the changes of their state (draining,
 * left), in order; the updates that only refresh an instance are left out.
 */
final class RegistryWatch {

  private final Registry registry;
  private final BlockingQueue<Registry.Change> changes = new LinkedBlockingQueue<>();

  private RegistryWatch(Registry registry) {
    this.registry = registry;
    registry.onChange(change -> {
      if (change.kind() != Registry.ChangeKind.UPDATED || !change.instance().isServing()) {
        changes.add(change);
      }
    });
  }

  /** A registry of {@code config}'s heartbeat timeout on {@code vertx}, ready. */
  static RegistryWatch start(Vertx vertx, DuetConfig config) throws Exception {
    Registry registry = Registry.create(vertx, config);
    await(registry.ready());
    return new RegistryWatch(registry);
  }

  Registry registry() {
    return registry;
  }

  /**
   * The next change of {@code kind}, which must come within 5 s; asked for an addition or a
   * removal, it passes over changes of state.
   */
  Registry.Change next(Registry.ChangeKind kind) throws InterruptedException {
    Registry.Change change;
    do {
      change = changes.poll(5, TimeUnit.SECONDS);
      assertNotNull(change, "no registry change within 5 s; expected " + kind);
    } while (kind != Registry.ChangeKind.UPDATED && change.kind() == Registry.ChangeKind.UPDATED);
    assertEquals(kind, change.kind(), change.toString());
    return change;
  }
}
