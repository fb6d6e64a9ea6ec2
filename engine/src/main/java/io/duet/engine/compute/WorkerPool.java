package io.duet.engine.compute;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;

/**
 * A fork-join barrier for the forward pass: {@link #run} splits a job into chunks that the
 * calling thread and the pool's workers claim one at a time, and returns when all are done.
 *
 * <p>Each thread owns a contiguous share of a job's chunks and runs it in order, so the weight
 * rows one thread reads form one long sequential run that the hardware prefetcher follows
 * (chunks handed out alternately would make every thread's reads jump at each chunk). A thread that finishes its share early takes chunks from the far end of
 * the others' shares, so a thread that loses its core for a while does not hold up the job.
 *
 * <p>A job too small to pay for the hand-off runs on the calling thread alone
 * ({@link #MIN_PARALLEL_WORK}), so an engine of a tiny model leaves its workers parked. While
 * the cores are full of other work ({@link CoreLoad}: another engine, the event loops, other
 * processes), a job must be far larger to be shared ({@link #MIN_PARALLEL_WORK_CROWDED}): a
 * worker would only take time from that work.
 *
 * <p>A decode step issues some thirty such jobs of a few tens of microseconds each, so waking a
 * parked thread per job would cost more than the job. Workers therefore spin for a short while
 * after each job before they park ({@link #SPIN_NANOS}, a quarter of it when other compute
 * threads share the cores), and park at once when the caller says it has no job for a while
 * ({@link #rest}): an engine between steps keeps its workers spinning, an idle one costs no CPU.
 *
 * <p>The caller never waits for a worker to wake up: a worker joins a job only while chunks of
 * it may be left, and once the caller has seen every chunk claimed it closes the job and waits
 * only for the workers that joined it, each finishing the one chunk it runs. A worker that was
 * parked, or lost its core, and comes late finds the job closed and goes back to waiting.
 * (Waiting for every worker to check in made the caller spin through each parked worker's
 * wake-up, for jobs of a few microseconds on a small model: the pool's spinning was the first
 * item of a tiny-request profile.) Nothing is allocated per job.
 */
public final class WorkerPool implements AutoCloseable {

  /** One unit of a job. {@code worker} is in {@code [0, size())}, for per-thread scratch space. */
  @FunctionalInterface
  public interface Task {
    void run(int chunk, int worker);
  }

  private static final long SPIN_NANOS = TimeUnit.MICROSECONDS.toNanos(200);
  /**
   * Multiply-adds below which a job runs on the calling thread alone. Handing a job to a worker
   * costs the caller a microsecond or two and keeps the worker spinning between jobs; one
   * thread does 7 to 40 thousand multiply-adds a microsecond on these kernels (one token to
   * many), so a job this small would gain a few microseconds at best from a second thread, and
   * on shared cores loses them. The smallest matrix of the 15M shape's one-token step (288 by
   * 288, 83k) stays above it; aidreams260K's (dim 64) one-token jobs and the smaller jobs of
   * short prompts stay below.
   */
  static final long MIN_PARALLEL_WORK = 1 << 16;
  /**
   * {@link #MIN_PARALLEL_WORK} while the cores are full of other work: some 25-150 microseconds
   * of one thread's work. The 15M shape's larger matrices stay shared from a few tokens on (the
   * feed-forward's up projections are 442k multiply-adds a token), so its decode steps at
   * concurrency 8 keep their second token within 2x of one engine's TPOT; aidreams260K's jobs
   * (33k a token at most) stay on the engine thread below 32 tokens, which cut a tiny
   * request's CPU by a fifth under load. (At 4M the 15M shape's decode steps of 8 sequences
   * would run on one thread, their second token at 2.4x.)
   */
  static final long MIN_PARALLEL_WORK_CROWDED = 1 << 20;
  /** Where the job number starts in {@link #jobState}; below: the closed flag, the joined. */
  private static final int JOB_SHIFT = 17;
  private static final long CLOSED = 1L << 16;
  private static final long JOINED_MASK = CLOSED - 1;
  /** Spin turns between yields when this pool has its cores to itself. */
  private static final int YIELD_EVERY_ALONE = 1024;
  /** ... and when other busy compute threads share them. */
  private static final int YIELD_EVERY_SHARED = 64;
  /** Longs between two threads' share slots: one cache line. */
  private static final int SHARE_STRIDE = 8;

  private final Thread[] workers;
  /**
   * Per thread, the chunks of its share not yet claimed: the front index in the high half, the
   * end in the low half, so that the owner (at the front) and thieves (at the end) claim with
   * one compare-and-set. Slots are a cache line apart so owners do not contend.
   */
  private final AtomicLongArray shares;
  /**
   * The current job: its number (from 1, in the bits from {@link #JOB_SHIFT}), whether it is
   * closed to workers that have not joined it, and how many joined and have not left. Written
   * after the job's task and shares, so a worker that joins sees them.
   */
  private final AtomicLong jobState = new AtomicLong();
  private long jobNumber;
  private volatile boolean closed;
  /** Set by {@link #rest}, cleared by the next parallel job: waiting workers park at once. */
  private volatile boolean resting;
  private volatile Task task;
  private volatile Throwable failure;
  /** 1 while worker i+1 is parked or about to park. */
  private final AtomicIntegerArray waiting;
  private final int yieldEvery;
  private final long spinNanos;
  private final CoreLoad coreLoad;

  /**
   * @param threads total parallelism including the calling thread; at least 1
   * @param sharedCores whether other busy compute threads run on the same cores (a prefill and
   *     a decode engine in one JVM); spin waits then give the core away much sooner
   */
  public WorkerPool(int threads, String name, boolean sharedCores) {
    this(threads, name, sharedCores, CoreLoad.system());
  }

  /** A pool that asks {@code coreLoad} whether the cores are full (for tests). */
  WorkerPool(int threads, String name, boolean sharedCores, CoreLoad coreLoad) {
    this(threads, name, sharedCores, sharedCores ? SPIN_NANOS / 4 : SPIN_NANOS, coreLoad);
  }

  /** ... whose workers spin {@code spinNanos} after a job before they park (for tests). */
  WorkerPool(int threads, String name, boolean sharedCores, long spinNanos, CoreLoad coreLoad) {
    if (threads < 1) {
      throw new IllegalArgumentException("threads must be at least 1, was " + threads);
    }
    workers = new Thread[threads - 1];
    shares = new AtomicLongArray(threads * SHARE_STRIDE);
    waiting = new AtomicIntegerArray(threads - 1);
    yieldEvery = sharedCores ? YIELD_EVERY_SHARED : YIELD_EVERY_ALONE;
    this.spinNanos = spinNanos;
    this.coreLoad = coreLoad;
    for (int i = 0; i < workers.length; i++) {
      int index = i + 1;
      workers[i] = new Thread(() -> workLoop(index), name + "-" + index);
      workers[i].setDaemon(true);
      workers[i].start();
    }
  }

  public int size() {
    return workers.length + 1;
  }

  /**
   * Runs {@code task} for every chunk in {@code [0, chunkCount)} and waits for all of them. A
   * chunk that throws stops the job (chunks not yet started are skipped) and surfaces as an
   * {@link IllegalStateException} once every thread has left the job.
   */
  public void run(int chunkCount, Task job) {
    run(chunkCount, Long.MAX_VALUE, job);
  }

  /**
   * {@link #run(int, Task)} for a job of about {@code multiplyAdds} multiply-adds: one below
   * {@link #MIN_PARALLEL_WORK} ({@link #MIN_PARALLEL_WORK_CROWDED} while the cores are full of
   * other work) runs on the calling thread alone, chunk by chunk in order, without waking a
   * worker.
   */
  public void run(int chunkCount, long multiplyAdds, Task job) {
    if (closed) {
      throw new IllegalStateException("worker pool is closed");
    }
    if (workers.length == 0 || chunkCount == 1 || multiplyAdds < minParallelWork()) {
      try {
        for (int c = 0; c < chunkCount; c++) {
          job.run(c, 0);
        }
      } catch (RuntimeException | Error e) {
        throw new IllegalStateException("forward-pass task failed: " + e, e);
      }
      return;
    }
    task = job;
    failure = null;
    resting = false;
    int threads = size();
    for (int i = 0; i < threads; i++) {
      shares.set(i * SHARE_STRIDE, range(shareStart(chunkCount, i, threads),
          shareStart(chunkCount, i + 1, threads)));
    }
    jobState.set(++jobNumber << JOB_SHIFT);
    for (int i = 0; i < workers.length; i++) {
      if (waiting.get(i) == 1) {
        LockSupport.unpark(workers[i]);
      }
    }
    try {
      claimChunks(job, 0);
    } catch (Throwable t) {
      failure = t;
      abandonChunks();
    }
    // Every chunk is claimed: only the workers that joined can still be running one.
    long state = jobState.getAndAdd(CLOSED);
    for (int spins = 1; (state & JOINED_MASK) != 0; spins++) {
      pause(spins);
      state = jobState.get();
    }
    task = null;
    Throwable error = failure;
    if (error != null) {
      throw new IllegalStateException("forward-pass task failed: " + error, error);
    }
  }

  private long minParallelWork() {
    return coreLoad.crowded(workers) ? MIN_PARALLEL_WORK_CROWDED : MIN_PARALLEL_WORK;
  }

  /**
   * The caller has no job for a while: workers waiting for one park at once instead of spinning
   * out their time. The next parallel {@link #run} wakes them.
   */
  public void rest() {
    resting = true;
  }

  /** Runs the caller's own share in order, then takes what is left of the others' from the end. */
  private void claimChunks(Task job, int worker) {
    int c;
    while ((c = claim(worker, true)) >= 0) {
      job.run(c, worker);
    }
    int threads = size();
    for (int i = 1; i < threads; i++) {
      int victim = (worker + i) % threads;
      while ((c = claim(victim, false)) >= 0) {
        job.run(c, worker);
      }
    }
  }

  /** The next chunk of {@code share}, from its front or its end; -1 once it is empty. */
  private int claim(int share, boolean front) {
    int slot = share * SHARE_STRIDE;
    while (true) {
      long current = shares.get(slot);
      int from = (int) (current >>> 32);
      int to = (int) current;
      if (from >= to) {
        return -1;
      }
      long next = front ? range(from + 1, to) : range(from, to - 1);
      if (shares.compareAndSet(slot, current, next)) {
        return front ? from : to - 1;
      }
    }
  }

  private static int shareStart(int chunkCount, int thread, int threads) {
    return (int) ((long) chunkCount * thread / threads);
  }

  private static long range(int from, int to) {
    return ((long) from << 32) | to;
  }

  /** After a failure: no thread starts another chunk of this job. */
  private void abandonChunks() {
    for (int i = 0; i < size(); i++) {
      shares.set(i * SHARE_STRIDE, 0L);
    }
  }

  private void workLoop(int index) {
    long seen = 0;
    while (!closed) {
      long number = awaitJob(seen, index);
      if (closed) {
        return;
      }
      seen = number;
      if (!join(number)) {
        continue;
      }
      try {
        claimChunks(task, index);
      } catch (Throwable t) {
        failure = t;
        abandonChunks();
      } finally {
        jobState.decrementAndGet();
      }
    }
  }

  /** Joins job {@code number} unless it is over or closed (its chunks are all claimed). */
  private boolean join(long number) {
    while (true) {
      long state = jobState.get();
      if (state >>> JOB_SHIFT != number || (state & CLOSED) != 0) {
        return false;
      }
      if (jobState.compareAndSet(state, state + 1)) {
        return true;
      }
    }
  }

  /** Waits for a job after job {@code seen}; returns its number. */
  private long awaitJob(long seen, int index) {
    long spinUntil = System.nanoTime() + spinNanos;
    int spins = 0;
    long current;
    while ((current = jobState.get() >>> JOB_SHIFT) == seen && !closed) {
      if (System.nanoTime() < spinUntil && !resting) {
        pause(++spins);
        continue;
      }
      // Publish the intent to park before the last look at the job, so that a caller
      // publishing a job at the same moment either is seen here or sees this flag and unparks.
      waiting.set(index - 1, 1);
      if (jobState.get() >>> JOB_SHIFT == seen && !closed) {
        LockSupport.park(this);
      }
      waiting.set(index - 1, 0);
      spinUntil = System.nanoTime() + spinNanos;
    }
    return current;
  }

  /**
   * One turn of a spin wait. Now and then it yields the core: when more compute threads than
   * cores are busy (a prefill and a decode engine sharing a machine), the thread being waited
   * for may be the one that needs it. Yielding too often costs single-stream decode speed, so
   * it happens often only when the cores are known to be shared.
   */
  private void pause(int spins) {
    if (spins % yieldEvery == 0) {
      Thread.yield();
    } else {
      Thread.onSpinWait();
    }
  }

  @Override
  public void close() {
    closed = true;
    for (Thread worker : workers) {
      LockSupport.unpark(worker);
    }
  }
}
