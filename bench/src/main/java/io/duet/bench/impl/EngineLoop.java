package io.duet.bench.impl;

import io.duet.engine.Engine;
import io.duet.engine.Generation;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * The engine alone, as {@link io.duet.engine.OfflineGenerator} runs it (one continuous batch
 * in the calling thread), instrumented per token: at most {@code concurrency} requests run at
 * once and the next one is admitted (and its clock starts) as soon as one finishes, as a client
 * with that many connections would do. A newly admitted prompt is prefilled in the same
 * forward pass as the running sequences' decode step.
 */
public final class EngineLoop {

  private EngineLoop() {
  }

  /** Runs every prompt; results in prompt order. {@code onFinished} gets finished counts. */
  public static List<RequestTiming> run(Engine engine, List<int[]> prompts, SamplingParams params,
      int concurrency, IntConsumer onFinished) {
    int vocab = engine.config().vocabSize();
    RequestTiming[] timings = new RequestTiming[prompts.size()];
    List<Generation> running = new ArrayList<>();
    List<Integer> runningIndex = new ArrayList<>();
    List<Sequence> toStep = new ArrayList<>();
    int next = 0;
    int finished = 0;
    while (next < prompts.size() || !running.isEmpty()) {
      while (next < prompts.size() && running.size() < concurrency) {
        timings[next] = new RequestTiming(System.nanoTime());
        Sequence sequence = engine.allocate(prompts.get(next));
        running.add(new Generation(engine, sequence, params, new Sampler(params, vocab)));
        runningIndex.add(next++);
      }
      toStep.clear();
      for (Generation g : running) {
        toStep.add(g.sequence());
      }
      engine.step(toStep);
      for (int i = running.size() - 1; i >= 0; i--) {
        Generation g = running.get(i);
        Generation.Delta delta = g.accept(g.sampleNext());
        timings[runningIndex.get(i)].event(System.nanoTime(), 1);
        if (delta.finish() == null) {
          engine.append(g.sequence(), delta.token());
          continue;
        }
        engine.release(g.sequence());
        running.remove(i);
        runningIndex.remove(i);
        onFinished.accept(++finished);
      }
    }
    return List.of(timings);
  }
}
