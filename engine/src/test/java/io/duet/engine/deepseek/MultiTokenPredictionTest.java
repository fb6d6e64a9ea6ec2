package io.duet.engine.deepseek;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.ContinuousBatch;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Engines;
import io.duet.engine.FinishReason;
import io.duet.engine.Generation;
import io.duet.engine.KvTransferException;
import io.duet.engine.ModelFormatException;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Storage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * DeepSeek-V3's multi-token prediction module as the engine's drafter: its drafts are the
 * reference's, its KV layer is part of the layout and of a transfer, a rejected draft leaves
 * nothing behind, and speculative decoding changes no greedy output.
 */
class MultiTokenPredictionTest {

  private static final int BLOCK = 8;

  @TempDir
  Path dir;

  private static EngineOptions options(Path model, boolean mtp) {
    return new EngineOptions().modelPath(model).kvBlocks(160).blockSize(BLOCK).maxSequences(4)
        .maxBatchTokens(64).threads(2).mtp(mtp);
  }

  private static List<int[]> prompts() {
    List<int[]> prompts = new ArrayList<>();
    prompts.add(new int[] {0});
    prompts.add(new int[] {0, 17, 42, 99, 5, 63, 8});
    prompts.add(new int[] {0, 99, 98, 97, 96, 95, 94, 93, 92, 91, 90, 3, 4, 5, 6, 7});
    int[] long100 = new int[100];
    for (int i = 0; i < long100.length; i++) {
      long100[i] = (i * 37 + 11) % 128;
    }
    prompts.add(long100);
    return prompts;
  }

  @Test
  void aDraftIsTheArgmaxOfTheReferenceModulesLogitsAfterTheNextToken() throws IOException {
    NaiveDeepSeek reference = TinyDeepSeek.write(dir, Storage.BF16, true, false, 21).reference();
    try (Engine engine = Engines.open(options(dir, true))) {
      assertEquals(1, engine.draftTokens());
      // The 100-token prompt's draft pass spans two passes of at most 64 rows.
      for (int[] prompt : prompts()) {
        Sequence sequence = engine.allocate(prompt);
        engine.step(List.of(sequence));
        int next = Sampler.argmax(sequence.logits());
        int draft = engine.draft(List.of(sequence), new int[] {next})[0];
        int[] known = Arrays.copyOf(prompt, prompt.length + 1);
        known[prompt.length] = next;
        double[][] expected = reference.nextTokenLogits(known);
        assertEquals(NaiveDeepSeek.argmax(expected[expected.length - 1]), draft,
            "draft after a prompt of " + prompt.length);
        // A decode step with the draft, then the next draft: the module's KV of every earlier
        // position (the prompt's, then the step's) is what the reference recomputes.
        engine.append(sequence, new int[] {next, draft}, 2);
        engine.step(List.of(sequence));
        int after = Sampler.argmax(sequence.logits(0));
        if (after != draft) {
          engine.rejectDrafts(sequence, 1);
        } else {
          after = Sampler.argmax(sequence.logits(1));
        }
        int second = engine.draft(List.of(sequence), new int[] {after})[0];
        int[] later = Arrays.copyOf(sequence.tokens(), sequence.length() + 1);
        later[sequence.length()] = after;
        double[][] expectedLater = reference.nextTokenLogits(later);
        assertEquals(NaiveDeepSeek.argmax(expectedLater[expectedLater.length - 1]), second,
            "second draft after a prompt of " + prompt.length);
        engine.release(sequence);
      }
      assertEquals(0, engine.kvStats().usedBlocks());
    }
  }

  @ParameterizedTest
  @EnumSource(value = Storage.class, names = {"BF16", "FP8"})
  void greedyOutputIsTheSameWithMtpOnAndOff(Storage storage) throws IOException {
    TinyDeepSeek.write(dir, storage, true, false, 5);
    int[] nearTheEnd = new int[250];
    for (int i = 0; i < nearTheEnd.length; i++) {
      nearTheEnd[i] = (i * 13 + 5) % 128;
    }
    List<int[]> prompts = new ArrayList<>(prompts());
    prompts.add(nearTheEnd);
    List<SamplingParams> settings = List.of(
        SamplingParams.greedy(24).withIgnoreEos(true),
        SamplingParams.greedy(1).withIgnoreEos(true),
        SamplingParams.greedy(2).withIgnoreEos(true),
        SamplingParams.greedy(5).withIgnoreEos(true),
        SamplingParams.greedy(30),
        SamplingParams.greedy(30).withStopTokenIds(List.of(7, 50, 90, 101)));
    try (Engine off = Engines.open(options(dir, false));
        Engine on = Engines.open(options(dir, true))) {
      long proposed = 0;
      for (SamplingParams params : settings) {
        List<OfflineGenerator.Completion> expected =
            new OfflineGenerator(off, 3).generateAll(prompts, params);
        Run run = run(on, prompts, params);
        proposed += run.batch.draftsProposed();
        for (int i = 0; i < prompts.size(); i++) {
          String where = params + ", prompt " + i;
          assertArrayEquals(expected.get(i).outputTokens(), run.outputs.get(i).outputTokens(),
              where);
          assertEquals(expected.get(i).finishReason(), run.outputs.get(i).finishReason(), where);
        }
      }
      assertTrue(proposed > 0, "no draft was proposed");
      assertEquals(0, on.kvStats().usedBlocks());
    }
  }

  @Test
  void aDraftableCheckpointsDraftsAreMostlyKeptAndChangeNoOutput() throws IOException {
    TinyDeepSeek.writeDraftable(dir, 4);
    SamplingParams params = SamplingParams.greedy(40).withIgnoreEos(true);
    try (Engine off = Engines.open(options(dir, false));
        Engine on = Engines.open(options(dir, true))) {
      List<OfflineGenerator.Completion> expected =
          new OfflineGenerator(off, 3).generateAll(prompts(), params);
      Run run = run(on, prompts(), params);
      for (int i = 0; i < expected.size(); i++) {
        assertArrayEquals(expected.get(i).outputTokens(), run.outputs.get(i).outputTokens(),
            "prompt " + i);
      }
      double rate = (double) run.batch.draftsAccepted() / run.batch.draftsProposed();
      assertTrue(rate > 0.5, run.batch.draftsAccepted() + " of " + run.batch.draftsProposed()
          + " drafts kept");
      // Every kept draft saved a step: fewer steps than tokens.
      assertTrue(run.steps < 4 * 40 - run.batch.draftsAccepted() + 4, run.steps + " steps");
    }
  }

  @Test
  void theContextEndStopsAGenerationAsWithoutMtp() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 6);
    int[] prompt = new int[248];
    for (int i = 0; i < prompt.length; i++) {
      prompt[i] = (i * 7 + 3) % 128;
    }
    SamplingParams params = SamplingParams.greedy(50).withIgnoreEos(true);
    try (Engine off = Engines.open(options(dir, false));
        Engine on = Engines.open(options(dir, true))) {
      OfflineGenerator.Completion expected = new OfflineGenerator(off, 1).generate(prompt, params);
      Generation generation = run(on, List.of(prompt), params).outputs.get(0);
      assertEquals(FinishReason.LENGTH, expected.finishReason());
      assertEquals(256 - 248 + 1, expected.outputTokens().length);
      assertArrayEquals(expected.outputTokens(), generation.outputTokens());
      assertEquals(FinishReason.LENGTH, generation.finishReason());
    }
  }

  @Test
  void samplingWithMtpIsDeterministicForASeed() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 8);
    SamplingParams params = SamplingParams.greedy(40).withTemperature(0.8f).withSeed(99)
        .withIgnoreEos(true);
    try (Engine on = Engines.open(options(dir, true))) {
      Generation first = run(on, List.of(prompts().get(1)), params).outputs.get(0);
      Generation second = run(on, List.of(prompts().get(1)), params).outputs.get(0);
      assertEquals(40, first.outputTokenCount());
      assertArrayEquals(first.outputTokens(), second.outputTokens());
    }
  }

  /**
   * Speculative sampling through the engine: the token verified against a draft (kept, or drawn
   * in its place) is distributed as the model's own distribution after the first token, top-k
   * 8 at temperature 0.25, computed here from an engine without MTP (chi-square, p = 0.001).
   */
  @Test
  void aSampledTokenAfterADraftIsDistributedAsTheModelSays() throws IOException {
    TinyDeepSeek.writeDraftable(dir, 4);
    int[] prompt = {0, 17, 42, 99, 5};
    int topK = 8;
    SamplingParams params = SamplingParams.greedy(3).withTemperature(0.25f).withTopK(topK)
        .withIgnoreEos(true);
    int runs = 2400;
    List<Generation> generations = new ArrayList<>();
    long proposed;
    long accepted;
    try (Engine on = Engines.open(options(dir, true))) {
      ContinuousBatch<Integer> batch = new ContinuousBatch<>(on, ignoring());
      while (generations.size() < runs || !batch.isEmpty()) {
        while (generations.size() < runs && batch.size() < 2) {
          // Seeds far apart: xorshift's first numbers from nearby small seeds are alike.
          SamplingParams seeded = params.withSeed(generations.size() * 0x9E3779B97F4A7C15L
              + 12345);
          Generation generation = new Generation(on, on.allocate(prompt), seeded,
              new Sampler(seeded, on.info().vocabSize()));
          batch.join(generations.size(), generation);
          generations.add(generation);
        }
        batch.step();
      }
      proposed = batch.draftsProposed();
      accepted = batch.draftsAccepted();
    }
    List<int[]> pairs = generations.stream().map(Generation::outputTokens).toList();
    assertTrue(proposed >= runs, "every second token was verified against a draft");
    assertTrue(accepted > 0 && accepted < proposed, accepted + " of " + proposed + " kept");
    int[] firstCounts = new int[128];
    for (int[] pair : pairs) {
      firstCounts[pair[0]]++;
    }
    int first = NaiveDeepSeek.argmax(Arrays.stream(firstCounts).asDoubleStream().toArray());
    double[] target;
    try (Engine off = Engines.open(options(dir, false))) {
      int[] known = Arrays.copyOf(prompt, prompt.length + 1);
      known[prompt.length] = first;
      Sequence sequence = off.allocate(known);
      off.step(List.of(sequence));
      target = topKDistribution(sequence.logits(), topK, 0.25f);
      off.release(sequence);
    }
    int[] counts = new int[128];
    int samples = 0;
    for (int[] pair : pairs) {
      if (pair[0] == first) {
        counts[pair[1]]++;
        samples++;
      }
    }
    // Bins expected fewer than 5 times are pooled, as chi-square needs.
    double chi = 0;
    int bins = 0;
    double pooledExpected = 0;
    int pooledCount = 0;
    for (int t = 0; t < 128; t++) {
      if (target[t] == 0) {
        assertEquals(0, counts[t], "token " + t + " is outside the top " + topK);
      } else if (target[t] * samples < 5) {
        pooledExpected += target[t] * samples;
        pooledCount += counts[t];
      } else {
        double expected = target[t] * samples;
        chi += (counts[t] - expected) * (counts[t] - expected) / expected;
        bins++;
      }
    }
    if (pooledExpected > 0) {
      chi += (pooledCount - pooledExpected) * (pooledCount - pooledExpected) / pooledExpected;
      bins++;
    }
    double[] limits = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32};
    assertTrue(bins >= 3 && samples >= 300, bins + " bins, " + samples + " samples");
    assertTrue(chi < limits[bins - 1], "chi-square " + chi + " over " + bins + " bins of "
        + samples + " samples: " + Arrays.toString(counts));
  }

  /** Softmax of the {@code k} largest logits at {@code temperature}, zero elsewhere. */
  private static double[] topKDistribution(float[] logits, int k, float temperature) {
    float[] sorted = logits.clone();
    Arrays.sort(sorted);
    float threshold = sorted[sorted.length - k];
    double[] p = new double[logits.length];
    double sum = 0;
    for (int i = 0; i < logits.length; i++) {
      if (logits[i] >= threshold) {
        p[i] = Math.exp((logits[i] - sorted[sorted.length - 1]) / temperature);
        sum += p[i];
      }
    }
    for (int i = 0; i < p.length; i++) {
      p[i] /= sum;
    }
    return p;
  }

  @Test
  void theMtpLayerIsPartOfTheLayoutAndOfATransfer() throws IOException {
    TinyDeepSeek.write(dir, Storage.FP8, true, false, 5);
    int[] prompt = prompts().get(2);
    SamplingParams params = SamplingParams.greedy(20).withIgnoreEos(true);
    try (Engine off = Engines.open(options(dir, false));
        Engine prefill = Engines.open(options(dir, true));
        Engine decode = Engines.open(options(dir, true))) {
      assertTrue(prefill.layout().fingerprint().endsWith(
          "/L4/latent:f32[1x16],rope_key:f32[1x8]/B8"), prefill.layout().fingerprint());
      assertTrue(off.layout().fingerprint().contains("/L3/"), off.layout().fingerprint());
      assertEquals(4L * (16 + 8) * Float.BYTES, prefill.layout().bytesPerToken());
      int[] expected = new OfflineGenerator(off, 1).generate(prompt, params).outputTokens();

      Sequence prefilled = prefill.allocate(prompt);
      prefill.step(List.of(prefilled));
      int token = Sampler.argmax(prefilled.logits());
      // The module's KV of the prompt's last position needs the sampled token.
      assertThrows(IllegalStateException.class, () -> prefill.exportKv(prefilled));
      prefill.draft(List.of(prefilled), new int[] {token});
      KvTransferException refused = assertThrows(KvTransferException.class,
          () -> Engines.transfer(prefill, prefilled, off));
      assertEquals(KvTransferException.Reason.FINGERPRINT_MISMATCH, refused.reason());
      Sequence imported = Engines.transfer(prefill, prefilled, decode);
      prefill.release(prefilled);

      Generation generation = new Generation(decode, imported, params,
          new Sampler(params, decode.info().vocabSize()));
      ContinuousBatch<Integer> batch = new ContinuousBatch<>(decode, ignoring());
      batch.join(0, generation, token);
      while (!batch.isEmpty()) {
        batch.step();
      }
      assertArrayEquals(expected, generation.outputTokens());
      assertTrue(batch.draftsProposed() > 0);
      assertEquals(0, decode.kvStats().usedBlocks());
      assertEquals(0, off.kvStats().usedBlocks());
    }
  }

  @Test
  void aRejectedDraftGivesBackItsBlockAndNeverReachesThePrefixCache() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 5);
    int[] prompt = {0, 11, 22, 33, 44, 55, 66};
    try (Engine engine = Engines.open(options(dir, true))) {
      Sequence sequence = engine.allocate(prompt);
      engine.step(List.of(sequence));
      int next = Sampler.argmax(sequence.logits());
      int draft = engine.draft(List.of(sequence), new int[] {next})[0];
      int wrong = (draft + 1) % 128;
      // Position 8, the draft's, opens a second block.
      engine.append(sequence, new int[] {next, wrong}, 2);
      engine.step(List.of(sequence));
      assertEquals(2, engine.kvStats().usedBlocks());
      int[] withDraft = Arrays.copyOf(sequence.tokens(), 12);
      Sequence other = engine.allocate(withDraft);
      assertEquals(0, other.cachedPrefixTokens(), "a block ahead of a draft was cached");
      engine.release(other);

      int corrected = Sampler.argmax(sequence.logits(0));
      assertNotEquals(wrong, corrected, "the test's draft was right by chance");
      engine.rejectDrafts(sequence, 1);
      assertEquals(8, sequence.length());
      assertEquals(1, engine.kvStats().usedBlocks());
      assertThrows(IllegalArgumentException.class, () -> engine.rejectDrafts(sequence, 1));

      int second = engine.draft(List.of(sequence), new int[] {corrected})[0];
      engine.append(sequence, new int[] {corrected, second}, 2);
      engine.step(List.of(sequence));
      // The first block is cached now, keyed with the token after it: the module's KV of its
      // last slot depends on that token.
      int[] ahead = Arrays.copyOf(sequence.tokens(), 12);
      Sequence same = engine.allocate(ahead);
      assertEquals(BLOCK, same.cachedPrefixTokens());
      engine.release(same);
      ahead[BLOCK] = (ahead[BLOCK] + 1) % 128;
      Sequence differentNext = engine.allocate(ahead);
      assertEquals(0, differentNext.cachedPrefixTokens());
      engine.release(differentNext);
      engine.release(sequence);
    }
  }

  @Test
  void mtpWithoutAModuleToDraftWithIsAClearStartUpError() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, TinyDeepSeek.shape(true, 0), false, 5);
    ModelFormatException e = assertThrows(ModelFormatException.class,
        () -> Engine.open(options(dir, true)));
    assertTrue(e.getMessage().contains("num_nextn_predict_layers is 0"), e.getMessage());
    try (Engine off = Engines.open(options(dir, false))) {
      assertEquals(0, off.draftTokens());
      assertThrows(IllegalStateException.class,
          () -> off.draft(List.of(), new int[0]));
    }
    IllegalArgumentException llama = assertThrows(IllegalArgumentException.class,
        () -> Engine.open(Engines.aidreamsOptions().mtp(true)));
    assertTrue(llama.getMessage().contains("no multi-token prediction module"),
        llama.getMessage());
  }

  @Test
  void mtpAndExpertParallelismTogetherAreRefused() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 5);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Engine.openRanks(options(dir, true).expertParallel(2), 2));
    assertTrue(e.getMessage().contains("expert parallelism"), e.getMessage());
  }

  /** A drafting engine's continuous batch over the prompts, to the end. */
  private record Run(ContinuousBatch<Integer> batch, List<Generation> outputs, int steps) {
  }

  private static Run run(Engine engine, List<int[]> prompts, SamplingParams params) {
    ContinuousBatch<Integer> batch = new ContinuousBatch<>(engine, ignoring());
    List<Generation> outputs = new ArrayList<>();
    int next = 0;
    int steps = 0;
    while (next < prompts.size() || !batch.isEmpty()) {
      // Two at a time, so that drafted sequences share passes with prompts and each other.
      while (next < prompts.size() && batch.size() < 2) {
        Generation generation = new Generation(engine, engine.allocate(prompts.get(next)),
            params, new Sampler(params, engine.info().vocabSize()));
        outputs.add(generation);
        batch.join(next++, generation);
      }
      batch.step();
      steps++;
    }
    return new Run(batch, outputs, steps);
  }

  private static ContinuousBatch.Listener<Integer> ignoring() {
    return new ContinuousBatch.Listener<>() {
      @Override
      public void onToken(Integer tag, Generation generation, Generation.Delta delta) {
      }

      @Override
      public void onFailure(Integer tag, Generation generation, RuntimeException error) {
        throw error;
      }
    };
  }
}
