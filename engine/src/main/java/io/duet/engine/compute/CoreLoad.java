package io.duet.engine.compute;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.concurrent.TimeUnit;

/**
 * Whether the cores have room for a {@link WorkerPool}'s workers: the machine's (or container's)
 * recent CPU use, less what the pool's own workers used, leaves at least
 * {@link #MIN_FREE_CORES} of a core. When it does not, every core is taken by other work (the
 * engine thread itself, another engine, the event loops, other processes), a worker could only
 * take time from it, and a job split in two would finish no sooner but cost its hand-offs and
 * the worker's spinning between jobs. Sampled at most every {@link #SAMPLE_NANOS}, by the
 * pool's calling thread only.
 */
final class CoreLoad {

  /** Where the figures come from; {@link #system()} in production. */
  interface Source {
    /** Recent CPU use of the whole machine or container, in [0, 1]; below 0 if unknown. */
    double recentLoad();

    /** CPU time of {@code thread} so far, in nanoseconds; below 0 if unknown. */
    long cpuNanos(Thread thread);

    int cores();

    long nanoTime();
  }

  static final long SAMPLE_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
  /** The free share of a core below which a job's second thread has nowhere to run. */
  static final double MIN_FREE_CORES = 0.5;

  private final Source source;
  private long sampledAt = Long.MIN_VALUE;
  private long workersCpu;
  private boolean crowded;

  CoreLoad(Source source) {
    this.source = source;
  }

  /** The JVM's figures: the OS bean's CPU load, the threads' CPU time. */
  static CoreLoad system() {
    return new CoreLoad(systemSource());
  }

  static Source systemSource() {
    return SystemSource.INSTANCE;
  }

  /** Whether the cores were full of other work at the last sample; samples when one is due. */
  boolean crowded(Thread[] workers) {
    long now = source.nanoTime();
    if (sampledAt != Long.MIN_VALUE && now - sampledAt < SAMPLE_NANOS) {
      return crowded;
    }
    long cpu = 0;
    boolean cpuKnown = true;
    for (Thread worker : workers) {
      long nanos = source.cpuNanos(worker);
      cpuKnown &= nanos >= 0;
      cpu += Math.max(0, nanos);
    }
    // The load's window is about the last SAMPLE_NANOS, as the workers' CPU time's is. Without
    // the workers' share a pool would take its own work for others' and turn itself off.
    double load = source.recentLoad();
    if (sampledAt != Long.MIN_VALUE && load >= 0 && cpuKnown) {
      double window = now - sampledAt;
      double busyCores = load * source.cores();
      double ownWorkerCores = (cpu - workersCpu) / window;
      crowded = source.cores() - busyCores + ownWorkerCores < MIN_FREE_CORES;
    }
    sampledAt = now;
    workersCpu = cpu;
    return crowded;
  }

  /**
   * One for the JVM: the OS bean measures the load since its last call, so pools that each
   * called it would cut each other's window short; the load is read at most every
   * {@link #SAMPLE_NANOS} and shared.
   */
  private static final class SystemSource implements Source {
    static final SystemSource INSTANCE = new SystemSource();

    private final com.sun.management.OperatingSystemMXBean os =
        ManagementFactory.getPlatformMXBean(com.sun.management.OperatingSystemMXBean.class);
    private final ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    private final int cores = Runtime.getRuntime().availableProcessors();
    private long loadReadAt = Long.MIN_VALUE;
    private double load = -1;

    @Override
    public synchronized double recentLoad() {
      long now = System.nanoTime();
      if (loadReadAt == Long.MIN_VALUE || now - loadReadAt >= SAMPLE_NANOS) {
        load = os.getCpuLoad();
        loadReadAt = now;
      }
      return load;
    }

    @Override
    public long cpuNanos(Thread thread) {
      return threads.getThreadCpuTime(thread.getId());
    }

    @Override
    public int cores() {
      return cores;
    }

    @Override
    public long nanoTime() {
      return System.nanoTime();
    }
  }
}
