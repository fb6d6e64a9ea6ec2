package io.duet.bench.impl;

import io.duet.engine.Engine;
import io.duet.engine.Generation;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * The engine alone, as {@link OfflineGenerator} runs it (one continuous batch in the calling
 * thread), timed per token: at most {@code concurrency} requests run at once and the next one is
 * admitted (and its clock starts) as soon as one finishes and its KV reservation fits, as a
 * client with that many connections would see it. A newly admitted prompt is prefilled in the
 * same forward pass as the running sequences' decode step.
 */
public final class EngineLoop {

  private EngineLoop() {
  }

  /** Runs every prompt; results in prompt order. {@code onFinished} gets finished counts. */
  public static List<RequestTiming> run(Engine engine, List<int[]> prompts, SamplingParams params,
      int concurrency, IntConsumer onFinished) {
    Clock clock = new Clock(prompts.size(), onFinished);
    new OfflineGenerator(engine, concurrency).generateAll(prompts, params, clock);
    return List.of(clock.timings);
  }

  /** Starts a request's clock at its admission and stamps each of its tokens. */
  private static final class Clock implements OfflineGenerator.Observer {
    final RequestTiming[] timings;
    final IntConsumer onFinished;
    int finished;

    Clock(int requests, IntConsumer onFinished) {
      this.timings = new RequestTiming[requests];
      this.onFinished = onFinished;
    }

    @Override
    public void onAdmit(int index) {
      timings[index] = new RequestTiming(System.nanoTime());
    }

    @Override
    public void onToken(int index, Generation.Delta delta) {
      timings[index].event(System.nanoTime(), 1);
      if (delta.finish() != null) {
        onFinished.accept(++finished);
      }
    }
  }
}
