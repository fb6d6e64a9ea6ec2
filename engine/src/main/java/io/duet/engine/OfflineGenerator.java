package io.duet.engine;

import java.util.List;

/**
 * Runs a set of prompts to completion as one {@link ContinuousBatch} in the calling thread: the
 * engine without a server, for the CLI, tests and benchmarks. Prompts wait while the KV cache or
 * the batch is full and join as soon as others finish.
 */
public final class OfflineGenerator {

  /** The result of one prompt. */
  public record Completion(int[] promptTokens, int[] outputTokens, String text,
      FinishReason finishReason, int cachedPromptTokens) {
  }

  /** Watches a run as it goes, e.g. to time it; told on the generating thread. */
  public interface Observer {
    /** Prompt {@code index} is about to be allocated and to join the batch. */
    default void onAdmit(int index) {
    }

    /** Prompt {@code index} got a token; {@code delta.finish()} is set on its last. */
    default void onToken(int index, Generation.Delta delta) {
    }
  }

  private final Engine engine;
  private final int maxRunning;
  private long draftsProposed;
  private long draftsAccepted;

  /** @param maxRunning sequences decoded together at most */
  public OfflineGenerator(Engine engine, int maxRunning) {
    this.engine = engine;
    this.maxRunning = maxRunning;
  }

  /** Draft tokens the runs so far verified (with an engine that drafts), and kept. */
  public long draftsProposed() {
    return draftsProposed;
  }

  public long draftsAccepted() {
    return draftsAccepted;
  }

  public Completion generate(int[] prompt, SamplingParams params) {
    return generateAll(List.of(prompt), params).get(0);
  }

  /** Generates for every prompt with the same parameters; results in prompt order. */
  public List<Completion> generateAll(List<int[]> prompts, SamplingParams params) {
    return generateAll(prompts, params, new Observer() { });
  }

  /**
   * {@link #generateAll(List, SamplingParams)}, telling {@code observer} when each prompt is
   * admitted and each token is taken.
   *
   * @throws KvCacheFullException when one prompt's generation may need more blocks than the
   *     whole cache has
   */
  public List<Completion> generateAll(List<int[]> prompts, SamplingParams params,
      Observer observer) {
    return new Run(prompts, params, observer).toEnd();
  }

  /** One generateAll call: its admissions, and what it makes of the batch's reports. */
  private final class Run implements ContinuousBatch.Listener<Integer> {
    final List<int[]> prompts;
    final SamplingParams params;
    final Observer observer;
    final Completion[] results;
    final ContinuousBatch<Integer> batch = new ContinuousBatch<>(engine, this);
    /** Blocks reserved for the prompts in the batch. */
    int reserved;

    Run(List<int[]> prompts, SamplingParams params, Observer observer) {
      this.prompts = prompts;
      this.params = params;
      this.observer = observer;
      this.results = new Completion[prompts.size()];
    }

    List<Completion> toEnd() {
      int vocab = engine.info().vocabSize();
      int totalBlocks = engine.kvStats().totalBlocks();
      int next = 0;
      try {
        while (next < prompts.size() || !batch.isEmpty()) {
          // Admit a prompt only when the blocks its whole generation may need are left, so that
          // a running sequence never finds the cache full halfway.
          while (next < prompts.size() && batch.size() < maxRunning
              && reserved + reservation(next) <= totalBlocks) {
            observer.onAdmit(next);
            Sequence sequence = engine.allocate(prompts.get(next));
            reserved += reservation(next);
            batch.join(next, new Generation(engine, sequence, params, new Sampler(params, vocab)));
            next++;
          }
          if (batch.isEmpty()) {
            throw new KvCacheFullException(reservation(next), totalBlocks);
          }
          batch.step();
        }
      } finally {
        // Empty unless an exception cut the run short; its blocks must not outlive the call.
        batch.releaseAll();
        draftsProposed += batch.draftsProposed();
        draftsAccepted += batch.draftsAccepted();
      }
      return List.of(results);
    }

    int reservation(int index) {
      return engine.blocksForGeneration(prompts.get(index).length, params.maxTokens());
    }

    @Override
    public void onToken(Integer index, Generation generation, Generation.Delta delta) {
      observer.onToken(index, delta);
      if (delta.finish() != null) {
        results[index] = new Completion(prompts.get(index), generation.outputTokens(),
            generation.text(), generation.finishReason(),
            generation.sequence().cachedPrefixTokens());
        reserved -= reservation(index);
      }
    }

    @Override
    public void onFailure(Integer index, Generation generation, RuntimeException error) {
      // Offline, a failed sequence is a failed call: the caller gets the exception and the
      // finally block frees what the batch still holds.
      throw error;
    }
  }
}
