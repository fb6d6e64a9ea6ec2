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
 *
 * <p>A client sends text: a request's clock starts its prompt's tokenizing time before its
 * admission. The generator takes token ids, so the prompts are tokenized before the run, each
 * one timed; a server of one engine tokenizes within the time to first token, as the 1P1D that
 * this is compared with does.
 */
public final class EngineLoop {

  private EngineLoop() {
  }

  /**
   * Runs every prompt; results in prompt order. {@code onFinished} gets finished counts.
   *
   * @param tokenizeNanos how long each prompt's text took to tokenize
   */
  public static List<RequestTiming> run(Engine engine, List<int[]> prompts, long[] tokenizeNanos,
      SamplingParams params, int concurrency, IntConsumer onFinished) {
    Clock clock = new Clock(tokenizeNanos, onFinished);
    new OfflineGenerator(engine, concurrency).generateAll(prompts, params, clock);
    return List.of(clock.timings);
  }

  /** Starts a request's clock at its admission, less its tokenizing, and stamps its tokens. */
  private static final class Clock implements OfflineGenerator.Observer {
    final long[] tokenizeNanos;
    final RequestTiming[] timings;
    final IntConsumer onFinished;
    int finished;

    Clock(long[] tokenizeNanos, IntConsumer onFinished) {
      this.tokenizeNanos = tokenizeNanos;
      this.timings = new RequestTiming[tokenizeNanos.length];
      this.onFinished = onFinished;
    }

    @Override
    public void onAdmit(int index) {
      timings[index] = new RequestTiming(System.nanoTime() - tokenizeNanos[index]);
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
