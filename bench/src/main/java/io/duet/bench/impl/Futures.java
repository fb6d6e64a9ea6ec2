package io.duet.bench.impl;

import io.vertx.core.Future;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** Blocking waits for the bench's main thread. */
public final class Futures {

  private Futures() {
  }

  public static <T> T await(Future<T> future, long seconds) throws Exception {
    try {
      return future.toCompletionStage().toCompletableFuture().get(seconds, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof Exception cause) {
        throw cause;
      }
      throw e;
    } catch (TimeoutException e) {
      throw new IllegalStateException("no result within " + seconds + " s", e);
    }
  }
}
