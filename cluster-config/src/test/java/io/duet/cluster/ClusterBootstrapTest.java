package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vertx.core.AbstractVerticle;
import io.vertx.core.DeploymentOptions;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.internal.VertxInternal;
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

  private static <T> T await(Future<T> future) throws Exception {
    return future.toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
  }
}
