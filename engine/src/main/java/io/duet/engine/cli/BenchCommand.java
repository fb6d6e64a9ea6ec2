package io.duet.engine.cli;

import io.duet.engine.ByteChain;
import io.duet.engine.ContinuousBatch;
import io.duet.engine.Engine;
import io.duet.engine.EngineDescription;
import io.duet.engine.EngineOptions;
import io.duet.engine.Generation;
import io.duet.engine.KvImport;
import io.duet.engine.KvSnapshot;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Speed figures of the engine on one model: single-stream decode, aggregate decode of a batch,
 * prefill of a long prompt, KV export+import throughput, and the heap the model costs. Prompts
 * are random token ids (the figures do not depend on the text); each figure is the median of
 * {@code --repeat} runs after one warm-up run. Before any figure, {@code --warmup} decode steps
 * give the JIT time to compile the whole forward pass: the per-chunk tasks are called a few
 * times per layer, and a few hundred steps leave some of them in interpreted or first-tier code.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
    description = "Measure decode, batched decode, prefill and KV transfer speed.")
final class BenchCommand implements Callable<Integer> {

  @Mixin
  EngineArguments engineArguments;

  @Option(names = "--batch", description = "concurrent sequences for batched decode "
      + "(default: ${DEFAULT-VALUE})")
  int batch = 32;

  @Option(names = "--decode-tokens", description = "tokens per decode run (default: ${DEFAULT-VALUE})")
  int decodeTokens = 128;

  @Option(names = "--prompt-tokens", description = "prompt length for prefill (default: ${DEFAULT-VALUE})")
  int promptTokens = 256;

  @Option(names = "--repeat", description = "measured runs per figure (default: ${DEFAULT-VALUE})")
  int repeat = 3;

  @Option(names = "--warmup", description = "decode steps to run before the figures "
      + "(default: ${DEFAULT-VALUE})")
  int warmup = 1024;

  private final Random random = new Random(42);
  /** Holds one KV block; one buffer for every run, so the figure is not the allocator's. */
  private ByteBuffer transferBuffer;

  @Override
  public Integer call() throws Exception {
    EngineOptions options = engineArguments.engineOptions()
        .maxSequences(Math.max(batch, 1)).maxBatchTokens(Math.max(512, promptTokens));
    long heapBefore = usedHeap();
    try (Engine engine = Engine.open(options); Engine peer = Engine.open(options)) {
      long heapWithEngines = usedHeap();
      int seqLen = engine.info().contextLength();
      int prompt = Math.min(promptTokens, seqLen - 1);
      int decode = Math.min(decodeTokens, seqLen - 9);
      EngineDescription description = engine.description();
      System.out.printf("model %s%nkernels: %s, threads: %d%nweights: %s%n", description.model(),
          description.kernels(), engine.options().threads(), description.weights());
      transferBuffer = ByteBuffer.allocate(Math.toIntExact(
          engine.layout().bytesPerToken() * engine.options().blockSize()));
      System.err.printf("[bench] warm-up: %d decode steps in %d ms%n", warmup,
          engine.warmUp(warmup));

      double single = median("single-stream decode", () -> decodeRate(engine, 1, decode));
      double batched = median("decode x" + batch, () -> decodeRate(engine, batch, decode));
      double prefill = median("prefill " + prompt, () -> prefillRate(engine, prompt));
      double transfer = median("KV export+import", () -> transferRate(engine, peer, prompt));

      System.out.printf("%-34s %10.1f tok/s  (%.2f ms/token)%n", "single-stream decode", single,
          1000 / single);
      System.out.printf("%-34s %10.1f tok/s  (%.1fx single)%n",
          "aggregate decode, " + batch + " sequences", batched, batched / single);
      System.out.printf("%-34s %10.1f tok/s  (%.1fx single decode)%n",
          "prefill, " + prompt + "-token prompt", prefill, prefill / single);
      System.out.printf("%-34s %10.1f MB/s   (%d tokens, %.2f MB)%n", "KV export+import", transfer,
          prompt, prompt * engine.layout().bytesPerToken() / 1e6);
      double perEngine = (heapWithEngines - heapBefore) / 2e6;
      var kv = engine.kvStats();
      double kvCache = (double) kv.totalBlocks() * kv.blockSize() * engine.layout().bytesPerToken()
          / 1e6;
      System.out.printf("%-34s %10.1f MB     (per engine: KV cache %.1f MB + %.1f MB of "
          + "activations and the rest; the weights are off the heap)%n",
          "heap in use", perEngine, kvCache, perEngine - kvCache);
    }
    return 0;
  }

  private interface Run {
    double rate() throws Exception;
  }

  private double median(String label, Run run) throws Exception {
    run.rate();
    double[] rates = new double[repeat];
    for (int i = 0; i < repeat; i++) {
      System.err.printf("\r[bench] %-28s run %d/%d", label, i + 1, repeat);
      rates[i] = run.rate();
    }
    System.err.printf("\r[bench] %-28s done          %n", label);
    Arrays.sort(rates);
    return rates[repeat / 2];
  }

  private int[] randomPrompt(Engine engine, int length) {
    int[] tokens = new int[length];
    tokens[0] = engine.info().bosToken();
    for (int i = 1; i < length; i++) {
      tokens[i] = 3 + random.nextInt(engine.info().vocabSize() - 3);
    }
    return tokens;
  }

  /**
   * Tokens per second of {@code sequences} sequences decoding {@code tokens} steps together in
   * one continuous batch, timed from after the step that prefilled their prompts.
   */
  private double decodeRate(Engine engine, int sequences, int tokens) {
    SamplingParams params = SamplingParams.greedy(tokens + 1).withIgnoreEos(true);
    ContinuousBatch<Integer> batch = new ContinuousBatch<>(engine, IGNORE_TOKENS);
    try {
      for (int i = 0; i < sequences; i++) {
        batch.join(i, new Generation(engine, engine.allocate(randomPrompt(engine, 8)), params,
            new Sampler(params, engine.info().vocabSize())));
      }
      batch.step();
      long start = System.nanoTime();
      for (int t = 0; t < tokens; t++) {
        batch.step();
      }
      long nanos = System.nanoTime() - start;
      return (double) sequences * tokens / (nanos / 1e9);
    } finally {
      batch.releaseAll();
    }
  }

  /** The bench only times the batch; what it generates does not matter. */
  private static final ContinuousBatch.Listener<Integer> IGNORE_TOKENS =
      new ContinuousBatch.Listener<>() {
        @Override
        public void onToken(Integer tag, Generation generation, Generation.Delta delta) {
        }

        @Override
        public void onFailure(Integer tag, Generation generation, RuntimeException error) {
          throw error;
        }
      };

  private double prefillRate(Engine engine, int length) {
    Sequence s = engine.allocate(randomPrompt(engine, length));
    long start = System.nanoTime();
    engine.step(List.of(s));
    long nanos = System.nanoTime() - start;
    engine.release(s);
    return length / (nanos / 1e9);
  }

  /**
   * MB/s of copying a prefilled sequence's KV out of one engine and into another, block by
   * block, through one reused buffer: the engines' part of a KV transfer, without framing,
   * checksums or the network ({@code bench.jar kv-transfer} measures the whole path).
   */
  private double transferRate(Engine engine, Engine peer, int length) {
    Sequence s = engine.allocate(randomPrompt(engine, length));
    engine.step(List.of(s));
    long start = System.nanoTime();
    KvSnapshot snapshot = engine.exportKv(s);
    KvImport target = peer.beginImport(snapshot.layout(), snapshot.tokens());
    long bytes = 0;
    for (int i = 0; i < snapshot.blockCount(); i++) {
      transferBuffer.clear();
      snapshot.readBlock(i, transferBuffer);
      transferBuffer.flip();
      target.writeBlock(i, ByteChain.of(transferBuffer));
      bytes += snapshot.payloadBytes(i);
    }
    Sequence imported = target.finish();
    long nanos = System.nanoTime() - start;
    engine.release(s);
    peer.release(imported);
    return bytes / 1e6 / (nanos / 1e9);
  }

  private static long usedHeap() {
    for (int i = 0; i < 3; i++) {
      System.gc();
    }
    return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
  }
}
