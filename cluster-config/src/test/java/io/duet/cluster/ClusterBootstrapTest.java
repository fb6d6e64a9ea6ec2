package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vertx.core.AbstractVerticle;
import io.vertx.core.DeploymentOptions;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.internal.VertxInternal;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class ClusterBootstrapTest {

  /** Counts its stops. */
  private static class Counted extends AbstractVerticle {
    final AtomicInteger stops;

    Counted(AtomicInteger stops) {
      this.stops = stops;
    }

    @Override
    public void stop() {
      stops.incrementAndGet();
    }
  }

  /** Deploys two instances of a child deployment, as the proxy deploys its HTTP servers. */
  private static final class Parent extends Counted {
    Parent(AtomicInteger stops) {
      super(stops);
    }

    @Override
    public void start(Promise<Void> started) {
      vertx.deployVerticle(() -> new Counted(stops), new DeploymentOptions().setInstances(2))
          .<Void>mapEmpty().onComplete(started);
    }
  }

  @Test
  void stopUndeploysEveryDeploymentOnceThenClosesVertx() throws Exception {
    Vertx vertx = Vertx.vertx();
    AtomicInteger stops = new AtomicInteger();
    await(vertx.deployVerticle(new Parent(stops)));
    await(vertx.deployVerticle(new Counted(stops)));
    assertEquals(3, vertx.deploymentIDs().size(), "two top-level deployments and a child");

    await(ClusterBootstrap.stop(vertx));
    assertEquals(4, stops.get(), "the parent, its child's two instances and the other");
    assertTrue(((VertxInternal) vertx).closeFuture().isClosed());
  }

  /**
   * A clustered Vert.x has {@code instance.event-loops} event loops: one by default, so that the
   * instances of every deployment share one thread; two when configured so.
   */
  @Test
  void aClusteredVertxHasTheConfiguredEventLoops() throws Exception {
    for (int loops : new int[] {1, 2}) {
      DuetConfig config = DuetConfig.defaults()
          .with(Settings.CLUSTER_NAME, "duet-test-" + UUID.randomUUID())
          .with(Settings.CLUSTER_PORT, 20_000 + 20 * ThreadLocalRandom.current().nextInt(2_000))
          .with(Settings.CLUSTER_PORT_COUNT, 10);
      if (loops > 1) {
        config = config.with(Settings.INSTANCE_EVENT_LOOPS, loops);
      }
      Vertx vertx = await(ClusterBootstrap.start(config));
      try {
        Set<Thread> threads = ConcurrentHashMap.newKeySet();
        await(vertx.deployVerticle(() -> new AbstractVerticle() {
          @Override
          public void start() {
            threads.add(Thread.currentThread());
          }
        }, new DeploymentOptions().setInstances(4)));
        assertEquals(loops, threads.size(), "the threads of 4 instances: " + threads);
      } finally {
        await(ClusterBootstrap.stop(vertx));
      }
    }
  }

  private static <T> T await(Future<T> future) throws Exception {
    return future.toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
  }
}
