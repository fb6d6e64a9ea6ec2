package io.duet.proxy.routing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class InFlightCountsTest {

  private final InFlightCounts counts = new InFlightCounts();

  @Test
  void promptTokensAreCountedPerPrefillInstance() {
    counts.prefillStarted("p0", 30);
    counts.prefillStarted("p0", 12);
    counts.prefillStarted("p1", 5);
    assertEquals(42, counts.promptTokens("p0"));
    counts.prefillEnded("p0", 30);
    assertEquals(12, counts.promptTokens("p0"));
    assertEquals(5, counts.promptTokens("p1"));
    assertEquals(0, counts.promptTokens("p2"));
  }

  @Test
  void requestsAndTheirTokensAreCountedPerDecodeTargetSoRanksOfOneInstanceAreApart() {
    DecodeTarget rank0 = new DecodeTarget("d0", 0);
    DecodeTarget rank1 = new DecodeTarget("d0", 1);
    counts.decodeStarted(rank0, 100);
    counts.decodeStarted(rank0, 20);
    counts.decodeStarted(rank1, 7);
    assertEquals(2, counts.requests(rank0));
    assertEquals(120, counts.tokens(rank0));
    assertEquals(1, counts.requests(rank1));
    assertEquals(7, counts.tokens(rank1));
    counts.decodeEnded(rank0, 100);
    assertEquals(1, counts.requests(rank0));
    assertEquals(20, counts.tokens(rank0));
    counts.decodeEnded(rank0, 20);
    assertEquals(0, counts.tokens(rank0));
  }

  @Test
  void anEndWithoutAStartCountsNothing() {
    counts.decodeEnded(new DecodeTarget("d0", 0), 10);
    counts.prefillEnded("p0", 10);
    assertEquals(0, counts.requests(new DecodeTarget("d0", 0)));
    assertEquals(0, counts.tokens(new DecodeTarget("d0", 0)));
    assertEquals(0, counts.promptTokens("p0"));
  }

  @Test
  void eventLoopsCountingAtOnceLoseNothing() throws Exception {
    DecodeTarget target = new DecodeTarget("d0", 0);
    int threads = 4;
    int perThread = 20_000;
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<?>> runs = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        runs.add(pool.submit(() -> {
          for (int i = 0; i < perThread; i++) {
            counts.decodeStarted(target, 5);
            counts.prefillStarted("p0", 3);
            if (i % 2 == 0) {
              counts.decodeEnded(target, 5);
              counts.prefillEnded("p0", 3);
            }
          }
        }));
      }
      for (Future<?> run : runs) {
        run.get(30, TimeUnit.SECONDS);
      }
    } finally {
      pool.shutdownNow();
    }
    assertEquals(threads * perThread / 2, counts.requests(target));
    assertEquals(5L * threads * perThread / 2, counts.tokens(target));
    assertEquals(3L * threads * perThread / 2, counts.promptTokens("p0"));
  }
}
