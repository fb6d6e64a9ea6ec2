package io.duet.engine;

import java.util.ArrayList;
import java.util.List;

/**
 * Runs a set of prompts to completion as one continuous batch in the calling thread: the
 * engine without a server, for the CLI, tests and benchmarks. Prompts wait while the KV cache or
 * the batch is full and join as soon as others finish.
 */
public final class OfflineGenerator {

  /** The result of one prompt. */
  public record Completion(int[] promptTokens, int[] outputTokens, String text,
      FinishReason finishReason, int cachedPromptTokens) {
  }

  private final Engine engine;
  private final int maxRunning;

  /** @param maxRunning sequences decoded together at most */
  public OfflineGenerator(Engine engine, int maxRunning) {
    this.engine = engine;
    this.maxRunning = maxRunning;
  }

  public Completion generate(int[] prompt, SamplingParams params) {
    return generateAll(List.of(prompt), params).get(0);
  }

  /** Generates for every prompt with the same parameters; results in prompt order. */
  public List<Completion> generateAll(List<int[]> prompts, SamplingParams params) {
    int vocab = engine.config().vocabSize();
    Completion[] results = new Completion[prompts.size()];
    List<Generation> running = new ArrayList<>();
    List<Integer> runningIndex = new ArrayList<>();
    List<Sequence> toStep = new ArrayList<>();
    int totalBlocks = engine.kvStats().totalBlocks();
    int reserved = 0;
    int next = 0;
    while (next < prompts.size() || !running.isEmpty()) {
      toStep.clear();
      // Admit a prompt only when the blocks its whole generation may need are left, so that a
      // running sequence never finds the cache full halfway.
      while (next < prompts.size() && running.size() < maxRunning
          && reserved + reservation(prompts.get(next), params) <= totalBlocks) {
        Sequence sequence = engine.allocate(prompts.get(next));
        reserved += reservation(prompts.get(next), params);
        running.add(new Generation(engine, sequence, params, new Sampler(params, vocab)));
        runningIndex.add(next++);
      }
      if (running.isEmpty()) {
        throw new KvCacheFullException(reservation(prompts.get(next), params), totalBlocks);
      }
      for (Generation g : running) {
        toStep.add(g.sequence());
      }
      engine.step(toStep);
      for (int i = running.size() - 1; i >= 0; i--) {
        Generation g = running.get(i);
        int token = g.sampleNext();
        Generation.Delta delta = g.accept(token);
        if (delta.finish() == null) {
          engine.append(g.sequence(), token);
          continue;
        }
        Sequence s = g.sequence();
        int index = runningIndex.get(i);
        results[index] = new Completion(prompts.get(index), g.outputTokens(), g.text(),
            g.finishReason(), s.cachedPrefixTokens());
        engine.release(s);
        reserved -= reservation(prompts.get(index), params);
        running.remove(i);
        runningIndex.remove(i);
      }
    }
    return List.of(results);
  }

  private int reservation(int[] prompt, SamplingParams params) {
    return engine.blocksForGeneration(prompt.length, params.maxTokens());
  }
}
