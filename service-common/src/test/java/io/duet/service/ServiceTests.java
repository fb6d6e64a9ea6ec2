package io.duet.service;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.vertx.core.Future;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

/**
 * Fixtures the prefill, decode and proxy tests share (published as service-common's test-jar):
 * the small real model in {@code ../shared/models}, and bounded waits on futures and on
 * conditions the product offers no event for.
 */
public final class ServiceTests {

  /** The context of the aidreams260K model. */
  public static final int SEQ_LEN = 128;

  private ServiceTests() {
  }

  /** A file of the shared models folder; fails the test when it is missing. */
  public static Path shared(String file) {
    Path path = Path.of(System.getProperty("duet.shared.dir", "../../shared"), "models", file)
        .toAbsolutePath().normalize();
    assertTrue(Files.isRegularFile(path), "shared model file is missing: " + path);
    return path;
  }

  /** aidreams260K with its tokenizer, {@code kvBlocks} KV blocks and one thread. */
  public static EngineOptions aidreams(int kvBlocks) {
    return new EngineOptions().modelPath(shared("aidreams260K.bin"))
        .tokenizerPath(shared("aidreams260K.tok512.bin")).kvBlocks(kvBlocks).threads(1);
  }

  /** The engines one test opens, closed together when it ends. */
  public static final class Engines implements AutoCloseable {
    private final List<Engine> open = new ArrayList<>();

    /** Opens aidreams260K with {@code kvBlocks} KV blocks (see {@link #aidreams}). */
    public Engine open(int kvBlocks) throws IOException {
      return open(aidreams(kvBlocks));
    }

    public Engine open(EngineOptions options) throws IOException {
      Engine engine = Engine.open(options);
      open.add(engine);
      return engine;
    }

    /** Opens {@code count} engines over one load of the model, as a decode instance's ranks. */
    public List<Engine> openRanks(EngineOptions options, int count) throws IOException {
      List<Engine> ranks = Engine.openRanks(options, count);
      open.addAll(ranks);
      return ranks;
    }

    @Override
    public void close() {
      open.forEach(Engine::close);
      open.clear();
    }
  }

  /**
   * The first forward passes of a JVM run the Vector API kernels unoptimised (seconds); a test
   * class calls this once before its tests so that their own timings mean something.
   */
  public static void warmUpTheKernels() throws Exception {
    try (Engine warm = Engine.open(aidreams(64))) {
      warm.warmUp(40);
    }
  }

  /** The future's result, waiting at most 10 s; a failed future throws its own cause. */
  public static <T> T await(Future<T> future) throws Exception {
    try {
      return future.toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      if (e.getCause() instanceof Exception cause) {
        throw cause;
      }
      throw e;
    }
  }

  /**
   * Whether {@code check} holds within {@code timeout}, polled every 5 ms. For a condition that
   * is awaited: its result is not a proof that something did not happen.
   */
  public static boolean holdsWithin(Duration timeout, BooleanSupplier check) {
    return holdsWithin(timeout, Duration.ofMillis(5), check);
  }

  /**
   * Whether {@code check} holds within {@code timeout}, polled every {@code every}: for a
   * condition that costs a request to observe, such as another process's status page.
   */
  public static boolean holdsWithin(Duration timeout, Duration every, BooleanSupplier check) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!check.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        return false;
      }
      LockSupport.parkNanos(every.toNanos());
    }
    return true;
  }

  /** Fails the test unless {@code check} holds within {@code timeout}. */
  public static void eventually(String what, Duration timeout, BooleanSupplier check) {
    if (!holdsWithin(timeout, check)) {
      fail("not within " + timeout.toMillis() + " ms: " + what);
    }
  }
}
