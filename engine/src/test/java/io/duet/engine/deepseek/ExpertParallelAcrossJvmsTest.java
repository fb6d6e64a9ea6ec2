package io.duet.engine.deepseek;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.Sequence;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Storage;
import io.duet.engine.impl.LoopbackPorts;
import io.duet.engine.spi.ExpertExchangeException;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Expert parallelism over the network: the ranks of a group split between this JVM and a child
 * JVM, exchanging over TCP, produce exactly the logits of one engine holding every expert; a
 * killed JVM fails the survivor's step within the exchange timeout instead of hanging it; a
 * group wholly in this JVM still exchanges in memory.
 */
@Timeout(300)
class ExpertParallelAcrossJvmsTest {

  @TempDir
  Path dir;
  private Process child;
  private final StringBuffer childOutput = new StringBuffer();
  private final CompletableFuture<Void> childReady = new CompletableFuture<>();

  @AfterEach
  void killChild() throws InterruptedException {
    if (child != null) {
      ExpertRankProcess.kill(child);
    }
  }

  private void start(List<InetSocketAddress> addresses, int first, int count, int ep,
      long timeoutMillis, String mode, Path out) throws IOException {
    child = ExpertRankProcess.start(dir, addresses, first, count, ep, timeoutMillis, mode, out);
    Thread drain = new Thread(() -> {
      try (BufferedReader lines = new BufferedReader(new InputStreamReader(
          child.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line; (line = lines.readLine()) != null; ) {
          childOutput.append(line).append('\n');
          if (line.equals(ExpertRankProcess.READY)) {
            childReady.complete(null);
          }
        }
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      } finally {
        childReady.completeExceptionally(new IllegalStateException("the child ended"));
      }
    }, "child-output");
    drain.setDaemon(true);
    drain.start();
  }

  @ParameterizedTest(name = "ep {0}, {1} ranks in each JVM")
  @CsvSource({"2, 1", "4, 2"})
  void ranksInTwoJvmsDecodeExactlyAsOneEngine(int ep, int perJvm) throws Exception {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 13);
    List<float[][]> expected = new ArrayList<>();
    try (Engine alone = Engine.open(DeepSeekV3Test.options(dir))) {
      for (int[] prompt : ExpertParallelTest.PROMPTS) {
        expected.add(ExpertParallelTest.decode(alone, prompt));
      }
    }
    List<InetSocketAddress> addresses = LoopbackPorts.free(ep);
    Path out = dir.resolve("child-logits");
    start(addresses, perJvm, perJvm, ep, 60_000, "decode", out);
    List<Engine> engines = ExpertRankProcess.open(dir, addresses, 0, perJvm, ep,
        Duration.ofSeconds(60));
    List<List<float[][]>> decoded = new ArrayList<>();
    try {
      decoded.addAll(ExpertRankProcess.decode(engines, 0, ep));
      assertTrue(engines.get(0).expertExchangeNanos() > 0, "the ranks exchanged rows");
    } finally {
      engines.forEach(Engine::close);
    }
    assertTrue(child.waitFor(120, TimeUnit.SECONDS), "the child finished");
    assertEquals(0, child.exitValue(), childOutput.toString());
    decoded.addAll(ExpertRankProcess.read(out, perJvm));
    int decodedPrompts = 0;
    for (int rank = 0; rank < ep; rank++) {
      List<float[][]> got = decoded.get(rank);
      for (int i = 0; i < got.size(); i++) {
        int prompt = rank + i * ep;
        for (int step = 0; step < ExpertParallelTest.STEPS; step++) {
          assertArrayEquals(expected.get(prompt)[step], got.get(i)[step], "rank " + rank
              + ", prompt " + prompt + ", step " + step);
        }
        decodedPrompts++;
      }
    }
    assertEquals(ExpertParallelTest.PROMPTS.length, decodedPrompts);
  }

  @Test
  void aGroupWhollyInThisJvmExchangesInMemoryAndRanksBeyondTheInstanceAreRefused()
      throws Exception {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 5);
    // 4 ranks in groups of 2; this JVM holds group 0 whole, so nothing listens or connects
    List<InetSocketAddress> addresses = LoopbackPorts.free(4);
    List<Engine> engines = ExpertRankProcess.open(dir, addresses, 0, 2, 2,
        Duration.ofSeconds(5));
    try {
      List<List<float[][]>> decoded = ExpertRankProcess.decode(engines, 0, 2);
      List<float[][]> alone = new ArrayList<>();
      try (Engine engine = Engine.open(DeepSeekV3Test.options(dir))) {
        alone.add(ExpertParallelTest.decode(engine, ExpertParallelTest.PROMPTS[0]));
      }
      assertArrayEquals(alone.get(0)[ExpertParallelTest.STEPS - 1],
          decoded.get(0).get(0)[ExpertParallelTest.STEPS - 1]);
    } finally {
      engines.forEach(Engine::close);
    }
    IllegalArgumentException beyond = assertThrows(IllegalArgumentException.class,
        () -> ExpertRankProcess.open(dir, addresses, 3, 2, 2, Duration.ofSeconds(5)));
    assertTrue(beyond.getMessage().contains("ranks 3 to 4 are not all among the instance's 4"),
        beyond.getMessage());
  }

  @Test
  void aKilledJvmFailsTheSurvivorsStepWithinTheTimeout() throws Exception {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 5);
    List<InetSocketAddress> addresses = LoopbackPorts.free(2);
    start(addresses, 1, 1, 2, 5_000, "idle", null);
    List<Engine> engines = ExpertRankProcess.open(dir, addresses, 0, 1, 2,
        Duration.ofSeconds(5));
    try {
      childReady.get(120, TimeUnit.SECONDS);
      ExpertRankProcess.kill(child);
      Engine survivor = engines.get(0);
      Sequence sequence = survivor.allocate(ExpertParallelTest.PROMPTS[0]);
      long start = System.nanoTime();
      ExpertExchangeException failure = assertThrows(ExpertExchangeException.class,
          () -> survivor.step(List.of(sequence)));
      long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
      assertTrue(failure.getMessage().contains("rank 1"), failure.getMessage());
      // the exchange timeout (5 s) and a margin for a loaded machine
      assertTrue(millis < 15_000, millis + " ms");
      survivor.release(sequence);
      assertEquals(0, survivor.kvStats().usedBlocks());
      // the group is broken for good: the next step fails at once
      Sequence next = survivor.allocate(ExpertParallelTest.PROMPTS[1]);
      assertThrows(ExpertExchangeException.class, () -> survivor.step(List.of(next)));
      survivor.release(next);
    } finally {
      engines.forEach(Engine::close);
    }
  }
}
