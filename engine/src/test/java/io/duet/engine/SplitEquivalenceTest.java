package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Prefill in engine A, move the KV to engine B, decode in B: the same tokens as A alone, for
 * greedy and for seeded sampling (the sampler's state travels with the KV).
 */
class SplitEquivalenceTest {

  @ParameterizedTest(name = "temperature {0}")
  @ValueSource(floats = {0f, 0.9f})
  void prefillHereDecodeThereGivesTheSameTokens(float temperature) throws IOException {
    try (Engine a = Engines.aidreams(); Engine b = Engines.aidreams()) {
      int[] prompt = a.tokenizer().encode("In the quiet lab, a robot dreams of", true);
      SamplingParams params = SamplingParams.greedy(60).withTemperature(temperature)
          .withTopP(0.9f).withSeed(1234).withIgnoreEos(true);
      int vocab = a.info().vocabSize();
      int[] expected = new OfflineGenerator(a, 1).generate(prompt, params).outputTokens();

      Sequence prefilled = a.allocate(prompt);
      a.step(List.of(prefilled));
      Sampler prefillSampler = new Sampler(params, vocab);
      int first = prefillSampler.sample(prefilled.logits());
      Sequence decoding = Engines.transfer(a, prefilled, b);
      a.release(prefilled);

      assertEquals(prompt.length, decoding.computedTokens());
      Generation generation = new Generation(b, decoding, params,
          new Sampler(params, prefillSampler.state(), vocab));
      int token = first;
      while (generation.accept(token).finish() == null) {
        b.append(decoding, token);
        b.step(List.of(decoding));
        token = generation.sampleNext();
      }
      b.release(decoding);

      assertArrayEquals(expected, generation.outputTokens());
      assertEquals(0, a.kvStats().usedBlocks());
      assertEquals(0, b.kvStats().usedBlocks());
      assertTrue(expected.length == 60);
    }
  }
}
