package io.duet.engine.impl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.ExpertNetwork;
import io.duet.engine.spi.ExpertExchange;
import io.duet.engine.spi.ExpertExchangeException;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The all-to-all over TCP, its ranks in this JVM on loopback: rows reach the rank they are sent
 * to and come back transformed, ranks with fewer exchanges serve until all are done, and every
 * failure (a rank's serving throws, a rank that does not come, a peer that stops reading, a
 * rank that leaves, a wrong secret, a frame over the limit) fails the exchange with an
 * {@link ExpertExchangeException} within the timeout.
 */
@Timeout(60)
class SocketExpertExchangeTest {

  private static final int RANKS = 3;
  private final List<ExpertExchange> opened = Collections.synchronizedList(new ArrayList<>());

  @AfterEach
  void leave() {
    opened.forEach(ExpertExchange::leave);
  }

  private static ExpertNetwork network(List<InetSocketAddress> addresses, String secret,
      long timeoutMillis, int maxFrameBytes) {
    return new ExpertNetwork(addresses, 0, "127.0.0.1", secret,
        Duration.ofMillis(timeoutMillis), Duration.ofSeconds(20), maxFrameBytes);
  }

  private List<ExpertExchange> group(ExpertNetwork network, List<Integer> members) {
    List<ExpertExchange> ends = SocketExpertExchange.open(network, 0,
        network.rankAddresses().size(), members);
    opened.addAll(ends);
    return ends;
  }

  /** Serves by writing row + 100 * (serving rank + 1) + tag into the results. */
  private static ExpertExchange.Server adding(int rank) {
    return inbox -> {
      for (ExpertExchange.Mail mail : inbox) {
        for (int i = 0; i < mail.count() * mail.width(); i++) {
          mail.results()[i] = mail.rows()[i] + 100 * (rank + 1) + mail.tag(i / mail.width());
        }
      }
    };
  }

  private static List<CompletableFuture<Object>> onEveryRank(int ranks, IntFunction<Object> body) {
    List<CompletableFuture<Object>> results = new ArrayList<>();
    for (int r = 0; r < ranks; r++) {
      int rank = r;
      results.add(CompletableFuture.supplyAsync(() -> {
        try {
          return body.apply(rank);
        } catch (RuntimeException e) {
          return e;
        }
      }, task -> new Thread(task, "rank-" + rank).start()));
    }
    return results;
  }

  @Test
  void aRankBetweenStepsIsWokenWhenAPeerBeginsAStepAndNotByTheStepsOwnFrames() throws Exception {
    List<ExpertExchange> ends = group(network(LoopbackPorts.free(2), null, 10_000,
        ExpertNetwork.DEFAULT_MAX_FRAME_BYTES), List.of(0, 1));
    ExpertExchange idle = ends.get(1);
    Semaphore wakes = new Semaphore(0);
    idle.onPeerWaiting(wakes::release);
    assertFalse(idle.peerWaiting(), "no peer waits before any step");
    for (int step = 0; step < 2; step++) {
      // Rank 0 begins a step with rows for rank 1, which is between steps: it is woken, sees a
      // peer waiting, and joins with an empty step.
      CompletableFuture<Object> busy = onEveryRank(1, rank -> {
        ExpertExchange end = ends.get(0);
        end.outbox(1).clear(0, 1);
        end.outbox(1).add(new float[] {7}, 0, 0);
        end.exchange(adding(0));
        end.finishStep(adding(0));
        return end.outbox(1).results()[0];
      }).get(0);
      assertTrue(wakes.tryAcquire(20, TimeUnit.SECONDS), "step " + step + ": rank 1 was woken");
      assertTrue(idle.peerWaiting(), "step " + step);
      idle.finishStep(adding(1));
      assertEquals(7f + 200, busy.get(20, TimeUnit.SECONDS), "step " + step);
      // the step consumed every frame of its own: nobody waits now, and nothing woke rank 1
      assertFalse(idle.peerWaiting(), "step " + step + ": no peer waits after the step");
      assertEquals(0, wakes.availablePermits(), "step " + step + ": no wake during the step");
    }
    // a peer that leaves wakes the idle rank too, whose next step then fails at once
    ends.get(0).leave();
    assertTrue(wakes.tryAcquire(20, TimeUnit.SECONDS), "rank 1 was woken by the peer's leaving");
    assertTrue(idle.peerWaiting());
    assertEquals(null, idle.failure(), "the group breaks when a step finds the peer gone");
    assertThrows(ExpertExchangeException.class, () -> idle.finishStep(adding(1)));
    assertTrue(idle.failure().contains("has closed"), idle.failure());
    assertFalse(idle.peerWaiting(), "a broken group has nobody to wait for");
  }

  @Test
  void rowsComeBackFromTheRankTheyWentToAndRanksWithFewerExchangesServeOn() throws Exception {
    List<ExpertExchange> ends = group(network(LoopbackPorts.free(RANKS), "s3cret", 10_000,
        ExpertNetwork.DEFAULT_MAX_FRAME_BYTES), List.of(0, 1, 2));
    for (int step = 0; step < 3; step++) {
      int stepNumber = step;
      // Rank r makes r + 1 exchanges in its step (the others only serve meanwhile), sending
      // two rows tagged r to every rank.
      List<CompletableFuture<Object>> results = onEveryRank(RANKS, rank -> {
        ExpertExchange end = ends.get(rank);
        List<float[]> got = new ArrayList<>();
        for (int exchange = 0; exchange <= rank; exchange++) {
          for (int d = 0; d < RANKS; d++) {
            end.outbox(d).clear(exchange, 2);
            end.outbox(d).add(new float[] {rank, exchange}, 0, rank);
            end.outbox(d).add(new float[] {stepNumber, -1}, 0, rank);
          }
          end.exchange(adding(rank));
          for (int d = 0; d < RANKS; d++) {
            got.add(Arrays.copyOf(end.outbox(d).results(), 4));
          }
        }
        end.finishStep(adding(rank));
        return got;
      });
      for (int rank = 0; rank < RANKS; rank++) {
        Object outcome = results.get(rank).get(30, TimeUnit.SECONDS);
        assertTrue(outcome instanceof List, "rank " + rank + ": " + outcome);
        @SuppressWarnings("unchecked")
        List<float[]> got = (List<float[]>) outcome;
        assertEquals((rank + 1) * RANKS, got.size());
        for (int exchange = 0; exchange <= rank; exchange++) {
          for (int d = 0; d < RANKS; d++) {
            float added = 100 * (d + 1) + rank;
            assertArrayEquals(new float[] {rank + added, exchange + added, step + added,
                -1 + added}, got.get(exchange * RANKS + d), "step " + step + " rank " + rank
                + " exchange " + exchange + " via " + d);
          }
        }
      }
    }
    assertTrue(ends.get(0).exchangeNanos() > 0);
  }

  @Test
  void aRankWhoseServingFailsFailsEveryRanksExchangeAndTheGroupStaysBroken() throws Exception {
    List<ExpertExchange> ends = group(network(LoopbackPorts.free(RANKS), null, 10_000,
        ExpertNetwork.DEFAULT_MAX_FRAME_BYTES), List.of(0, 1, 2));
    List<CompletableFuture<Object>> failed = onEveryRank(RANKS, rank -> {
      ExpertExchange end = ends.get(rank);
      for (int d = 0; d < RANKS; d++) {
        end.outbox(d).clear(0, 1);
        end.outbox(d).add(new float[] {1}, 0, 0);
      }
      end.exchange(rank == 1 ? inbox -> {
        throw new IllegalStateException("boom");
      } : adding(rank));
      return "exchanged";
    });
    for (int rank = 0; rank < RANKS; rank++) {
      Object outcome = failed.get(rank).get(30, TimeUnit.SECONDS);
      if (rank == 1) {
        assertTrue(outcome instanceof IllegalStateException, "rank 1: " + outcome);
      } else {
        assertTrue(outcome instanceof ExpertExchangeException, "rank " + rank + ": " + outcome);
        assertTrue(((Exception) outcome).getMessage().contains("rank 1 failed serving"),
            ((Exception) outcome).getMessage());
      }
    }
    for (ExpertExchange end : ends) {
      ExpertExchangeException again = assertThrows(ExpertExchangeException.class,
          () -> end.finishStep(adding(end.rank())));
      assertTrue(again.getMessage().contains("rank 1 failed serving"), again.getMessage());
    }
  }

  @Test
  void aRankThatNeverComesTimesTheOthersOut() throws Exception {
    // rank 0 waits 300 ms, rank 1 (late) 20 s: it cannot time out itself in this test
    List<InetSocketAddress> addresses = LoopbackPorts.free(2);
    CompletableFuture<List<ExpertExchange>> rank0 = CompletableFuture.supplyAsync(
        () -> group(network(addresses, null, 300, ExpertNetwork.DEFAULT_MAX_FRAME_BYTES),
            List.of(0)));
    List<ExpertExchange> rank1 = group(new ExpertNetwork(addresses, 1, "127.0.0.1", null,
        Duration.ofSeconds(20), Duration.ofSeconds(20), ExpertNetwork.DEFAULT_MAX_FRAME_BYTES),
        List.of(1));
    List<ExpertExchange> ends = List.of(rank0.get(30, TimeUnit.SECONDS).get(0), rank1.get(0));
    long start = System.nanoTime();
    ExpertExchangeException e = assertThrows(ExpertExchangeException.class,
        () -> ends.get(0).finishStep(adding(0)));
    assertTrue(e.getMessage().contains("rank 1 of the expert-parallel group sent nothing within "
        + "300 ms"), e.getMessage());
    assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(300));
    // Rank 0 told rank 1 and closed its connections: rank 1's next exchange that needs rank 0
    // fails, for that reason and not by a timeout of its own.
    ExpertExchange.Mail mail = ends.get(1).outbox(0);
    mail.clear(0, 1);
    mail.add(new float[] {1}, 0, 0);
    long late = System.nanoTime();
    assertThrows(ExpertExchangeException.class, () -> ends.get(1).exchange(adding(1)));
    assertTrue(System.nanoTime() - late < TimeUnit.SECONDS.toNanos(15), "before its timeout");
  }

  @Test
  void aPeerThatStopsReadingIsCutOffAfterTheTimeout() throws Exception {
    List<InetSocketAddress> addresses = LoopbackPorts.free(2);
    CompletableFuture<List<ExpertExchange>> rank0 = CompletableFuture.supplyAsync(
        () -> group(network(addresses, "s3cret", 500, ExpertNetwork.DEFAULT_MAX_FRAME_BYTES),
            List.of(0)));
    // rank 1 is a socket that proves the secret and then never reads, as a frozen JVM
    try (Socket frozen = connectWhenListening(addresses.get(0))) {
      byte[] hello = ExpertWire.hello(2, 0, 1, 0);
      frozen.getOutputStream().write(hello);
      byte[] nonce = ExpertWire.readExactly(frozen.getInputStream(), ExpertWire.NONCE_BYTES);
      ExpertWire.readExactly(frozen.getInputStream(), ExpertWire.MAC_BYTES);
      frozen.getOutputStream().write(ExpertWire.proof("s3cret", "connector", hello, nonce));
      ExpertExchange end = rank0.get(30, TimeUnit.SECONDS).get(0);
      // 32 MB of rows: more than the sockets' buffers take
      float[] row = new float[1024];
      end.outbox(1).clear(0, row.length);
      for (int i = 0; i < 8192; i++) {
        end.outbox(1).add(row, 0, 0);
      }
      end.outbox(0).clear(0, row.length);
      long start = System.nanoTime();
      ExpertExchangeException e = assertThrows(ExpertExchangeException.class,
          () -> end.exchange(adding(0)));
      assertTrue(e.getMessage().contains("rank 1 of the expert-parallel group took nothing for "
          + "500 ms"), e.getMessage());
      assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(15), "cut off");
    }
  }

  @Test
  void aRankThatLeavesFailsTheOthersAtOnce() throws Exception {
    List<ExpertExchange> ends = group(network(LoopbackPorts.free(2), null, 30_000,
        ExpertNetwork.DEFAULT_MAX_FRAME_BYTES), List.of(0, 1));
    ends.get(1).leave();
    long start = System.nanoTime();
    ExpertExchangeException e = assertThrows(ExpertExchangeException.class,
        () -> ends.get(0).finishStep(adding(0)));
    assertTrue(e.getMessage().contains("rank 1 of the expert-parallel group has closed"),
        e.getMessage());
    assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(20), "long before the "
        + "timeout");
  }

  @Test
  void aFrameOverTheLimitFailsTheExchange() throws Exception {
    List<ExpertExchange> ends = group(network(LoopbackPorts.free(2), null, 10_000, 1024),
        List.of(0, 1));
    List<CompletableFuture<Object>> outcomes = onEveryRank(2, rank -> {
      ExpertExchange end = ends.get(rank);
      for (int d = 0; d < 2; d++) {
        end.outbox(d).clear(0, 300);
        end.outbox(d).add(new float[300], 0, 0);
      }
      end.exchange(adding(rank));
      return "exchanged";
    });
    for (CompletableFuture<Object> outcome : outcomes) {
      Object o = outcome.get(30, TimeUnit.SECONDS);
      assertTrue(o instanceof ExpertExchangeException, String.valueOf(o));
    }
    String reasons = outcomes.get(0).get() + " " + outcomes.get(1).get();
    assertTrue(reasons.contains("exceeds the expert channel's limit of 1024 bytes"), reasons);
  }

  @Test
  void aPeerWithoutTheSecretIsRefused() throws Exception {
    List<InetSocketAddress> addresses = LoopbackPorts.free(2);
    ExpertNetwork right = new ExpertNetwork(addresses, 0, "127.0.0.1", "right",
        Duration.ofSeconds(5), Duration.ofSeconds(3), ExpertNetwork.DEFAULT_MAX_FRAME_BYTES);
    ExpertNetwork wrong = new ExpertNetwork(addresses, 1, "127.0.0.1", "wrong",
        Duration.ofSeconds(5), Duration.ofSeconds(3), ExpertNetwork.DEFAULT_MAX_FRAME_BYTES);
    CompletableFuture<Object> rank0 = CompletableFuture.supplyAsync(() -> {
      try {
        return group(right, List.of(0));
      } catch (ExpertExchangeException e) {
        return e;
      }
    });
    ExpertExchangeException connector = assertThrows(ExpertExchangeException.class,
        () -> group(wrong, List.of(1)));
    assertTrue(connector.getMessage().contains("did not prove the expert channel's secret"),
        connector.getMessage());
    Object acceptor = rank0.get(30, TimeUnit.SECONDS);
    assertTrue(acceptor instanceof ExpertExchangeException, String.valueOf(acceptor));
    assertTrue(((Exception) acceptor).getMessage().contains("did not all connect"),
        ((Exception) acceptor).getMessage());
  }

  @Test
  void aConnectionThatIsNotAPeerIsDroppedAndTheMeshStillForms() throws Exception {
    List<InetSocketAddress> addresses = LoopbackPorts.free(2);
    ExpertNetwork network = network(addresses, "s3cret", 10_000,
        ExpertNetwork.DEFAULT_MAX_FRAME_BYTES);
    CompletableFuture<List<ExpertExchange>> rank0 =
        CompletableFuture.supplyAsync(() -> group(network, List.of(0)));
    // a stranger connects first and sends a handshake's length of junk; rank 0 answers
    // nothing and closes it
    try (Socket stranger = connectWhenListening(addresses.get(0))) {
      byte[] notAHello = new byte[ExpertWire.HELLO_BYTES];
      Arrays.fill(notAHello, (byte) 'G');
      stranger.getOutputStream().write(notAHello);
      InputStream in = stranger.getInputStream();
      assertEquals(-1, in.read(), "closed without an answer");
    }
    List<ExpertExchange> rank1 = group(new ExpertNetwork(addresses, 1, "127.0.0.1", "s3cret",
        Duration.ofSeconds(10), Duration.ofSeconds(20), ExpertNetwork.DEFAULT_MAX_FRAME_BYTES),
        List.of(1));
    List<ExpertExchange> ends = List.of(rank0.get(30, TimeUnit.SECONDS).get(0), rank1.get(0));
    List<CompletableFuture<Object>> done = onEveryRank(2, rank -> {
      ends.get(rank).finishStep(adding(rank));
      return "done";
    });
    for (CompletableFuture<Object> outcome : done) {
      assertEquals("done", outcome.get(30, TimeUnit.SECONDS));
    }
  }

  /** Connects once {@code address} listens (the rank binds it on its own thread). */
  private static Socket connectWhenListening(InetSocketAddress address) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (true) {
      try {
        return new Socket(address.getAddress(), address.getPort());
      } catch (IOException e) {
        if (System.nanoTime() > deadline) {
          throw e;
        }
        Thread.onSpinWait();
      }
    }
  }
}
