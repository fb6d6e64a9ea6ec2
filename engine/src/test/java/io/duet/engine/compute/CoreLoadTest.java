package io.duet.engine.compute;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;

class CoreLoadTest {

  private static final long SAMPLE = CoreLoad.SAMPLE_NANOS;

  /** Figures set by the test: the time, the machine's load, each thread's CPU time. */
  static final class FakeSource implements CoreLoad.Source {
    long now = 1_000_000_000L;
    double load;
    final int cores;
    final Map<Thread, Long> cpu = new HashMap<>();

    FakeSource(int cores) {
      this.cores = cores;
    }

    @Override
    public double recentLoad() {
      return load;
    }

    @Override
    public long cpuNanos(Thread thread) {
      return cpu.getOrDefault(thread, 0L);
    }

    @Override
    public int cores() {
      return cores;
    }

    @Override
    public long nanoTime() {
      return now;
    }

    /** The next window: {@code load} of the machine, {@code workerCores} of it the worker's. */
    void window(double load, Thread worker, double workerCores) {
      now += SAMPLE;
      this.load = load;
      cpu.merge(worker, (long) (workerCores * SAMPLE), Long::sum);
    }
  }

  /** A CoreLoad whose cores always have room: an idle machine that its clock never leaves. */
  static CoreLoad neverCrowded() {
    return new CoreLoad(new FakeSource(1));
  }

  private final Thread worker = new Thread(() -> { });
  private final Thread[] workers = {worker};
  private final FakeSource source = new FakeSource(2);
  private final CoreLoad coreLoad = new CoreLoad(source);

  @Test
  void coresFullOfOtherWorkAreCrowdedFromTheSecondSampleOn() {
    source.load = 1.0;
    assertFalse(coreLoad.crowded(workers), "the first sample has no window yet");
    source.window(1.0, worker, 0.0);
    assertTrue(coreLoad.crowded(workers));
  }

  @Test
  void coresFullOfThePoolsOwnWorkerAreNotCrowded() {
    coreLoad.crowded(workers);
    // The engine thread and its worker take both cores: without the worker one is free.
    source.window(1.0, worker, 1.0);
    assertFalse(coreLoad.crowded(workers));
    // Others take all but a third of a core beside the worker's third: less than half free.
    source.window(1.0, worker, 0.3);
    assertTrue(coreLoad.crowded(workers));
    source.window(0.7, worker, 0.3);
    assertFalse(coreLoad.crowded(workers), "0.6 + 0.3 of a core free");
  }

  @Test
  void theDecisionHoldsUntilTheNextSampleIsDue() {
    coreLoad.crowded(workers);
    source.window(1.0, worker, 0.0);
    assertTrue(coreLoad.crowded(workers));
    source.load = 0.0;
    source.now += SAMPLE - 1;
    assertTrue(coreLoad.crowded(workers), "resampled before its time");
    source.now += 1;
    assertFalse(coreLoad.crowded(workers));
  }

  @Test
  void withoutTheWorkersCpuTimeTheCoresAreNeverCrowded() {
    source.cpu.put(worker, -1L);
    coreLoad.crowded(workers);
    source.now += SAMPLE;
    source.load = 1.0;
    assertFalse(coreLoad.crowded(workers), "its own worker could be what fills the cores");
  }

  @Test
  void anUnknownLoadIsNeverCrowded() {
    coreLoad.crowded(workers);
    source.window(-1, worker, 0.0);
    assertFalse(coreLoad.crowded(workers));
  }

  @Test
  void theJvmsFiguresAreALoadInRangeAndTheThreadsCpuTime() {
    CoreLoad.Source system = CoreLoad.systemSource();
    double load = system.recentLoad();
    assertTrue(load < 0 || load <= 1.0, "load " + load);
    assertTrue(system.cores() >= 1);
    assertTrue(system.cpuNanos(Thread.currentThread()) > 0, "this thread's CPU time");
  }
}
