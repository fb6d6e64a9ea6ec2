package io.duet.engine.impl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.spi.ExpertExchange;
import io.duet.engine.spi.ExpertExchangeException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The in-JVM all-to-all: rows reach the rank they are sent to and come back transformed, ranks
 * with fewer exchanges serve the others until all are done, and a failure fails every rank's
 * exchange at once and leaves the group usable.
 */
@Timeout(30)
class LocalExpertExchangeTest {

  private static final int RANKS = 3;

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

  /** Runs {@code body(rank)} on a thread per rank; returns what each returned or threw. */
  private static List<CompletableFuture<Object>> onEveryRank(IntFunction<Object> body) {
    List<CompletableFuture<Object>> results = new ArrayList<>();
    for (int r = 0; r < RANKS; r++) {
      int rank = r;
      results.add(CompletableFuture.supplyAsync(() -> body.apply(rank),
          task -> new Thread(task, "rank-" + rank).start()));
    }
    return results;
  }

  @Test
  void rowsComeBackFromTheRankTheyWentToAndRanksWithFewerExchangesServeOn() throws Exception {
    LocalExpertExchange group = new LocalExpertExchange(RANKS, 10_000);
    // Rank r makes r + 1 exchanges in its step, sending one row tagged r to every rank.
    List<CompletableFuture<Object>> results = onEveryRank(rank -> {
      ExpertExchange end = group.rank(rank);
      List<float[]> got = new ArrayList<>();
      for (int exchange = 0; exchange <= rank; exchange++) {
        for (int d = 0; d < RANKS; d++) {
          end.outbox(d).clear(exchange, 2);
          end.outbox(d).add(new float[] {rank, exchange}, 0, rank);
        }
        end.exchange(adding(rank));
        for (int d = 0; d < RANKS; d++) {
          got.add(java.util.Arrays.copyOf(end.outbox(d).results(), 2));
        }
      }
      end.finishStep(adding(rank));
      return got;
    });
    for (int rank = 0; rank < RANKS; rank++) {
      @SuppressWarnings("unchecked")
      List<float[]> got = (List<float[]>) results.get(rank).get(20, TimeUnit.SECONDS);
      assertEquals((rank + 1) * RANKS, got.size());
      for (int exchange = 0; exchange <= rank; exchange++) {
        for (int d = 0; d < RANKS; d++) {
          float added = 100 * (d + 1) + rank;
          assertArrayEquals(new float[] {rank + added, exchange + added},
              got.get(exchange * RANKS + d), "rank " + rank + " exchange " + exchange + " via "
              + d);
        }
      }
    }
  }

  @Test
  void aRankWhoseServingFailsFailsEveryRanksExchangeAndTheGroupGoesOn() throws Exception {
    LocalExpertExchange group = new LocalExpertExchange(RANKS, 10_000);
    List<CompletableFuture<Object>> failed = onEveryRank(rank -> {
      ExpertExchange end = group.rank(rank);
      for (int d = 0; d < RANKS; d++) {
        end.outbox(d).clear(0, 1);
        end.outbox(d).add(new float[] {1}, 0, 0);
      }
      try {
        end.exchange(rank == 1 ? inbox -> {
          throw new IllegalStateException("boom");
        } : adding(rank));
        return "exchanged";
      } catch (RuntimeException e) {
        return e;
      }
    });
    for (int rank = 0; rank < RANKS; rank++) {
      Object outcome = failed.get(rank).get(20, TimeUnit.SECONDS);
      assertTrue(outcome instanceof RuntimeException, "rank " + rank + ": " + outcome);
      if (rank != 1) {
        assertTrue(outcome instanceof ExpertExchangeException, "rank " + rank + ": " + outcome);
        assertTrue(((Exception) outcome).getMessage().contains("rank 1 failed serving"),
            ((Exception) outcome).getMessage());
      }
    }
    // every rank has seen the failure: the next step works
    List<CompletableFuture<Object>> next = onEveryRank(rank -> {
      ExpertExchange end = group.rank(rank);
      for (int d = 0; d < RANKS; d++) {
        end.outbox(d).clear(0, 1);
        end.outbox(d).add(new float[] {1}, 0, 0);
      }
      end.exchange(adding(rank));
      end.finishStep(adding(rank));
      return end.outbox(2).results()[0];
    });
    for (CompletableFuture<Object> outcome : next) {
      assertEquals(301f, outcome.get(20, TimeUnit.SECONDS));
    }
  }

  @Test
  void aRankThatNeverComesTimesTheOthersOut() {
    LocalExpertExchange group = new LocalExpertExchange(2, 200);
    ExpertExchange end = group.rank(0);
    ExpertExchangeException e = assertThrows(ExpertExchangeException.class,
        () -> end.finishStep(adding(0)));
    assertTrue(e.getMessage().contains("within 200 ms"), e.getMessage());
    assertTrue(end.exchangeNanos() >= TimeUnit.MILLISECONDS.toNanos(200));
  }
}
