package io.duet.engine.compute;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every test runs under {@code assertTimeoutPreemptively}: a lost wake-up or a barrier that never
 * opens must fail the test, not hang the build.
 *
 * <p>With more threads than cores a job takes about a scheduler time slice (the calling thread
 * spins for a descheduled worker), so the oversubscribed cases run fewer jobs.
 */
/**
 * Pools here never find the cores full ({@link CoreLoadTest#neverCrowded}), so that a job large
 * enough to share is shared whatever else runs on the machine; one test gives a pool full cores.
 */
class WorkerPoolTest {

  /** Pools with more threads than cores are told their cores are shared. */
  private static final int CORES = Runtime.getRuntime().availableProcessors();


  private static final Duration TIMEOUT = Duration.ofSeconds(30);
  private static final AtomicInteger POOL_NAMES = new AtomicInteger();

  private static String uniqueName() {
    return "worker-pool-test-" + POOL_NAMES.incrementAndGet();
  }

  @Test
  void rejectsFewerThanOneThread() {
    assertThrows(IllegalArgumentException.class, () -> pool(0, uniqueName(), 0 > CORES));
  }

  @ParameterizedTest(name = "threads={0}")
  @ValueSource(ints = {1, 2, 4})
  void everyChunkRunsExactlyOnceOnAValidWorker(int threads) {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      try (WorkerPool pool = pool(threads, uniqueName(), threads > CORES)) {
        assertEquals(threads, pool.size());
        for (int chunks = 0; chunks <= 200; chunks++) {
          AtomicIntegerArray runs = new AtomicIntegerArray(Math.max(chunks, 1));
          AtomicInteger badWorker = new AtomicInteger(-1);
          pool.run(chunks, (chunk, worker) -> {
            runs.incrementAndGet(chunk);
            if (worker < 0 || worker >= threads) {
              badWorker.set(worker);
            }
          });
          for (int c = 0; c < chunks; c++) {
            assertEquals(1, runs.get(c), "chunk " + c + " of " + chunks);
          }
          assertEquals(-1, badWorker.get(), "worker index outside [0, " + threads + ")");
        }
      }
    });
  }

  @Test
  void workersReallyShareTheJob() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      try (WorkerPool pool = pool(2, uniqueName(), 2 > CORES)) {
        // Chunk 0 cannot finish until the other worker has run a chunk, so the job only
        // completes if a second thread takes part.
        AtomicBoolean workerOneRan = new AtomicBoolean();
        AtomicIntegerArray perWorker = new AtomicIntegerArray(2);
        pool.run(16, (chunk, worker) -> {
          perWorker.incrementAndGet(worker);
          if (worker == 1) {
            workerOneRan.set(true);
          } else {
            awaitCondition(workerOneRan::get, "worker 1 never ran a chunk");
          }
        });
        assertEquals(16, perWorker.get(0) + perWorker.get(1));
        assertTrue(perWorker.get(1) > 0);
      }
    });
  }

  @ParameterizedTest
  @ValueSource(ints = {2, 3, 4})
  void eachThreadRunsItsOwnShareFromTheFrontInOrder(int threads) {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      try (WorkerPool pool = pool(threads, uniqueName(), threads > CORES)) {
        int chunks = 8 * threads;
        for (int job = 0; job < 50; job++) {
          int[][] order = new int[threads][chunks];
          int[] counts = new int[threads];
          pool.run(chunks, (chunk, worker) -> order[worker][counts[worker]++] = chunk);
          for (int w = 0; w < threads; w++) {
            // Its own share is [8w, 8w + 8); what it ran of it must be a prefix, in order.
            int expected = 8 * w;
            for (int i = 0; i < counts[w]; i++) {
              int chunk = order[w][i];
              if (chunk / 8 == w) {
                assertEquals(expected++, chunk, "thread " + w + " ran its share out of order");
              }
            }
          }
        }
      }
    });
  }

  @Test
  void aThreadHeldUpInItsShareHasTheRestOfItTakenOver() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      try (WorkerPool pool = pool(2, uniqueName(), 2 > CORES)) {
        // The first chunk the calling thread runs waits until every other chunk is done,
        // including the rest of its own share: only the worker can run those. (On a busy machine
        // the worker may finish its share and take the caller's before the caller starts; then
        // the caller runs nothing, which is the same guarantee seen from the other side.)
        AtomicInteger othersDone = new AtomicInteger();
        AtomicIntegerArray perWorker = new AtomicIntegerArray(2);
        pool.run(16, (chunk, worker) -> {
          if (worker == 0 && perWorker.getAndIncrement(0) == 0) {
            awaitCondition(() -> othersDone.get() == 16 - 1, "the rest of a held-up share never ran");
          } else {
            perWorker.incrementAndGet(worker);
            othersDone.incrementAndGet();
          }
        });
        assertTrue(perWorker.get(0) <= 1, "the held-up caller ran " + perWorker.get(0) + " chunks");
        assertEquals(16 - perWorker.get(0), perWorker.get(1));
      }
    });
  }

  /**
   * 20k jobs with one thread per core; fewer with more threads than this machine's two cores,
   * where every job costs about a scheduler time slice (see the class comment).
   */
  @ParameterizedTest(name = "threads={0} jobs={1}")
  @CsvSource({"2, 20000", "4, 1000"})
  void manyConsecutiveTinyJobsAllComplete(int threads, int jobs) {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      try (WorkerPool pool = pool(threads, uniqueName(), threads > CORES)) {
        AtomicLong total = new AtomicLong();
        Random random = new Random(1);
        long expected = 0;
        for (int job = 0; job < jobs; job++) {
          int chunks = 2 + (job % 7);
          expected += chunks;
          pool.run(chunks, (chunk, worker) -> total.incrementAndGet());
          assertEquals(expected, total.get(), "job " + job + " returned before all its chunks ran");
          if (job % 4 == 0) {
            // A gap around the workers' spin period, so that they decide to park while the next
            // job is being published: the window a lost wake-up would hide in.
            spinFor(random.nextInt(300));
          }
        }
      }
    });
  }

  @Test
  void aJobAfterTheWorkersHaveParkedStillRuns() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      String name = uniqueName();
      try (WorkerPool pool = pool(3, name, 3 > CORES)) {
        List<Thread> workers = parkedWorkersAfterAJob(pool, name);
        assertEquals(2, workers.size());
        AtomicIntegerArray runs = new AtomicIntegerArray(50);
        pool.run(50, (chunk, worker) -> runs.incrementAndGet(chunk));
        for (int c = 0; c < 50; c++) {
          assertEquals(1, runs.get(c), "chunk " + c);
        }
      }
    });
  }

  @Test
  void restingWorkersParkAtOnceAndTheNextJobWakesThem() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      String name = uniqueName();
      // without rest(), the workers would spin far longer than awaitCondition waits
      try (WorkerPool pool = new WorkerPool(3, name, 3 > CORES, TimeUnit.MINUTES.toNanos(5),
          CoreLoadTest.neverCrowded())) {
        pool.run(8, (chunk, worker) -> {});
        List<Thread> workers = threadsNamed(name);
        assertEquals(2, workers.size());
        pool.rest();
        awaitCondition(() -> workers.stream().allMatch(t -> t.getState() == Thread.State.WAITING),
            "resting workers did not park");
        assertAWorkerTakesPartInTheNextJob(pool);
      }
    });
  }

  @Test
  void jobsTooSmallToShareRunOnTheCallingThreadInOrderAndLeaveTheWorkersParked() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      String name = uniqueName();
      try (WorkerPool pool = pool(3, name, 3 > CORES)) {
        List<Thread> workers = parkedWorkersAfterAJob(pool, name);
        Thread caller = Thread.currentThread();
        for (int job = 0; job < 1000; job++) {
          int[] next = {0};
          pool.run(8, WorkerPool.MIN_PARALLEL_WORK - 1, (chunk, worker) -> {
            assertSame(caller, Thread.currentThread());
            assertEquals(0, worker);
            assertEquals(next[0]++, chunk, "chunks out of order");
          });
          assertEquals(8, next[0]);
        }
        for (Thread worker : workers) {
          assertEquals(Thread.State.WAITING, worker.getState(), worker.getName() + " was woken");
        }
        assertAWorkerTakesPartInTheNextJob(pool);
      }
    });
  }

  @Test
  void whileTheCoresAreFullOfOtherWorkOnlyMuchLargerJobsAreShared() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      CoreLoadTest.FakeSource source = new CoreLoadTest.FakeSource(2);
      source.load = 1.0;
      String name = uniqueName();
      try (WorkerPool pool = new WorkerPool(2, name, false, new CoreLoad(source))) {
        pool.run(8, 1, (chunk, worker) -> { }); // the first sample
        source.now += CoreLoad.SAMPLE_NANOS;
        assertTheCallingThreadRunsAJobOf(pool, WorkerPool.MIN_PARALLEL_WORK_CROWDED - 1);
        assertAWorkerTakesPartInAJobOf(pool, WorkerPool.MIN_PARALLEL_WORK_CROWDED);
        source.now += CoreLoad.SAMPLE_NANOS;
        source.load = 0.5;
        assertAWorkerTakesPartInAJobOf(pool, WorkerPool.MIN_PARALLEL_WORK);
      }
    });
  }

  // ------------------------------------------------------------------------------ failures

  @Test
  void aTaskFailingOnAWorkerThreadSurfacesAsIllegalStateExceptionAndThePoolStillWorks() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      try (WorkerPool pool = pool(2, uniqueName(), 2 > CORES)) {
        RuntimeException boom = new RuntimeException("boom on a worker");
        AtomicBoolean workerFailed = new AtomicBoolean();
        IllegalStateException thrown = assertThrows(IllegalStateException.class,
            () -> pool.run(64, (chunk, worker) -> {
              if (worker != 0) {
                workerFailed.set(true);
                throw boom;
              }
              // The calling thread waits until the worker has thrown, so the failure surely
              // happens on the worker thread.
              awaitCondition(workerFailed::get, "the worker never ran a chunk");
            }));
        assertSame(boom, thrown.getCause());
        assertChunksRunOnce(pool, 100);
        assertChunksRunOnce(pool, 3);
      }
    });
  }

  @Test
  void aTaskFailingOnTheCallingThreadSurfacesAsIllegalStateExceptionAndThePoolStillWorks() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      try (WorkerPool pool = pool(2, uniqueName(), 2 > CORES)) {
        RuntimeException boom = new RuntimeException("boom on the calling thread");
        // Each thread waits in its first chunk until the other has one, so each runs one of
        // the two chunks and the failing one surely runs on the calling thread.
        AtomicBoolean callerStarted = new AtomicBoolean();
        AtomicBoolean workerStarted = new AtomicBoolean();
        RuntimeException thrown = assertThrows(RuntimeException.class,
            () -> pool.run(2, (chunk, worker) -> {
              if (worker == 0) {
                callerStarted.set(true);
                awaitCondition(workerStarted::get, "the worker never ran a chunk");
                throw boom;
              }
              workerStarted.set(true);
              awaitCondition(callerStarted::get, "the calling thread never ran a chunk");
            }));
        assertInstanceOf(IllegalStateException.class, thrown,
            "run() let the task's own exception escape instead of wrapping it: " + thrown);
        assertSame(boom, thrown.getCause());
        assertChunksRunOnce(pool, 100);
      }
    });
  }

  @Test
  void runDoesNotReturnWhileWorkersStillRunChunksOfAFailedJob() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      try (WorkerPool pool = pool(2, uniqueName(), 2 > CORES)) {
        AtomicBoolean callerStarted = new AtomicBoolean();
        AtomicBoolean workerStarted = new AtomicBoolean();
        AtomicInteger inFlight = new AtomicInteger();
        assertThrows(RuntimeException.class, () -> pool.run(2, (chunk, worker) -> {
          if (worker == 0) {
            callerStarted.set(true);
            awaitCondition(workerStarted::get, "the worker never ran a chunk");
            throw new RuntimeException("boom on the calling thread");
          }
          inFlight.incrementAndGet();
          workerStarted.set(true);
          awaitCondition(callerStarted::get, "the calling thread never ran a chunk");
          spinFor(50_000); // a long chunk (50 ms): still running when the caller throws
          inFlight.decrementAndGet();
        }));
        assertEquals(0, inFlight.get(),
            "run() returned while a worker was still inside a chunk of the failed job");
      }
    });
  }

  // ------------------------------------------------------------------------------- closing

  @Test
  void closeEndsSpinningWorkers() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      String name = uniqueName();
      WorkerPool pool = pool(4, name, 4 > CORES);
      pool.run(32, (chunk, worker) -> {});
      List<Thread> workers = threadsNamed(name);
      assertEquals(3, workers.size(), "one thread per worker besides the caller");
      pool.close(); // right after a job: the workers are still spinning
      assertAllEnd(workers);
    });
  }

  @Test
  void closeEndsParkedWorkers() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      String name = uniqueName();
      WorkerPool pool = pool(3, name, 3 > CORES);
      List<Thread> workers = parkedWorkersAfterAJob(pool, name);
      assertEquals(2, workers.size());
      pool.close();
      assertAllEnd(workers);
    });
  }

  @Test
  void closingAPoolThatNeverRanEndsItsWorkers() {
    assertTimeoutPreemptively(TIMEOUT, () -> {
      String name = uniqueName();
      WorkerPool pool = pool(2, name, 2 > CORES);
      List<Thread> workers = threadsNamed(name);
      assertEquals(1, workers.size());
      assertTrue(workers.get(0).isDaemon(), "workers must not keep the JVM alive");
      pool.close();
      assertAllEnd(workers);
    });
  }

  // ------------------------------------------------------------------------------- helpers

  private static void assertChunksRunOnce(WorkerPool pool, int chunks) {
    AtomicIntegerArray runs = new AtomicIntegerArray(chunks);
    pool.run(chunks, (chunk, worker) -> runs.incrementAndGet(chunk));
    for (int c = 0; c < chunks; c++) {
      assertEquals(1, runs.get(c), "chunk " + c + " of " + chunks);
    }
  }

  /**
   * Runs a job large enough to share whose chunks are held until a worker takes part, so that
   * it completes only if one does.
   */
  private static void assertAWorkerTakesPartInTheNextJob(WorkerPool pool) {
    assertAWorkerTakesPartInAJobOf(pool, WorkerPool.MIN_PARALLEL_WORK);
  }

  /** {@link #assertAWorkerTakesPartInTheNextJob} with a job of {@code multiplyAdds}. */
  private static void assertAWorkerTakesPartInAJobOf(WorkerPool pool, long multiplyAdds) {
    AtomicIntegerArray perWorker = new AtomicIntegerArray(pool.size());
    pool.run(64, multiplyAdds, (chunk, worker) -> {
      perWorker.incrementAndGet(worker);
      awaitCondition(() -> IntStream.range(1, pool.size()).anyMatch(w -> perWorker.get(w) > 0),
          "no worker took part in a job of " + multiplyAdds);
    });
  }

  private static void assertTheCallingThreadRunsAJobOf(WorkerPool pool, long multiplyAdds) {
    Thread caller = Thread.currentThread();
    pool.run(8, multiplyAdds, (chunk, worker) -> assertSame(caller, Thread.currentThread(),
        "a job of " + multiplyAdds + " was shared"));
  }

  /** Runs a job, then waits until the pool's workers have parked; returns them. */
  private static List<Thread> parkedWorkersAfterAJob(WorkerPool pool, String poolName) {
    pool.run(8, (chunk, worker) -> {});
    List<Thread> workers = threadsNamed(poolName);
    awaitCondition(() -> workers.stream().allMatch(t -> t.getState() == Thread.State.WAITING),
        "idle workers never parked");
    return workers;
  }

  /** A pool that never finds the cores full. */
  private static WorkerPool pool(int threads, String name, boolean sharedCores) {
    return new WorkerPool(threads, name, sharedCores, CoreLoadTest.neverCrowded());
  }

  private static List<Thread> threadsNamed(String poolName) {
    String prefix = poolName + "-";
    return Thread.getAllStackTraces().keySet().stream()
        .filter(t -> t.getName().startsWith(prefix))
        .collect(Collectors.toList());
  }

  private static void assertAllEnd(List<Thread> workers) throws InterruptedException {
    for (Thread worker : workers) {
      worker.join(TimeUnit.SECONDS.toMillis(10));
      assertFalse(worker.isAlive(), worker.getName() + " still runs after close()");
    }
  }

  /** Busy-waits (bounded) for a condition another thread makes true. */
  private static void awaitCondition(BooleanSupplier condition, String failure) {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError(failure);
      }
      Thread.onSpinWait();
    }
  }

  private static void spinFor(long micros) {
    long until = System.nanoTime() + TimeUnit.MICROSECONDS.toNanos(micros);
    while (System.nanoTime() < until) {
      Thread.onSpinWait();
    }
  }
}
