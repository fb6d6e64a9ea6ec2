package io.duet.cluster;

import io.vertx.core.Vertx;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/** Loading configurations in tests, on the test's thread. */
final class Configs {

  private Configs() {
  }

  static DuetConfig load(Vertx vertx, ConfigFlags flags, Map<String, String> env)
      throws Exception {
    return ConfigLoader.load(vertx, flags, env).toCompletionStage().toCompletableFuture()
        .get(10, TimeUnit.SECONDS);
  }

  /** The exception the loader fails with. */
  static Throwable failure(Vertx vertx, ConfigFlags flags, Map<String, String> env)
      throws Exception {
    try {
      DuetConfig config = load(vertx, flags, env);
      throw new AssertionError("loaded, but should have failed: " + config.describe());
    } catch (ExecutionException e) {
      return e.getCause();
    }
  }

  static Path yaml(Path dir, String name, String text) throws IOException {
    return Files.writeString(dir.resolve(name), text);
  }
}
