package io.duet.engine.cli;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.KvExport;
import io.duet.engine.Sequence;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
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
  private final ReusableBytes transferBytes = new ReusableBytes();

  @Override
  public Integer call() throws Exception {
    EngineOptions options = engineArguments.engineOptions()
        .maxSequences(Math.max(batch, 1)).maxBatchTokens(Math.max(512, promptTokens));
    long heapBefore = usedHeap();
    try (Engine engine = Engine.open(options); Engine peer = Engine.open(options)) {
      long heapWithEngines = usedHeap();
      int seqLen = engine.config().seqLen();
      int prompt = Math.min(promptTokens, seqLen - 1);
      int decode = Math.min(decodeTokens, seqLen - 9);
      System.out.printf("model %s %s%nkernels: %s, threads: %d%nweights: %s%n",
          engineArguments.model.getFileName(), engine.config(), engine.kernelsDescription(),
          engine.options().threads(), engine.model().storageDescription());
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
          + "activations and the rest; the %.1f MB model file is mapped, not on the heap)%n",
          "heap in use", perEngine, kvCache, perEngine - kvCache,
          engine.model().fileSize() / 1e6);
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
    tokens[0] = 1;
    for (int i = 1; i < length; i++) {
      tokens[i] = 3 + random.nextInt(engine.config().vocabSize() - 3);
    }
    return tokens;
  }

  /** Tokens per second of {@code sequences} sequences decoding {@code tokens} steps together. */
  private double decodeRate(Engine engine, int sequences, int tokens) {
    List<Sequence> running = new ArrayList<>();
    for (int i = 0; i < sequences; i++) {
      running.add(engine.allocate(randomPrompt(engine, 8)));
    }
    engine.step(running);
    long start = System.nanoTime();
    for (int t = 0; t < tokens; t++) {
      for (Sequence s : running) {
        engine.append(s, argmax(s.logits()));
      }
      engine.step(running);
    }
    long nanos = System.nanoTime() - start;
    running.forEach(engine::release);
    return (double) sequences * tokens / (nanos / 1e9);
  }

  private double prefillRate(Engine engine, int length) {
    Sequence s = engine.allocate(randomPrompt(engine, length));
    long start = System.nanoTime();
    engine.step(List.of(s));
    long nanos = System.nanoTime() - start;
    engine.release(s);
    return length / (nanos / 1e9);
  }

  /** MB/s of serializing a prefilled sequence's KV and importing it into another engine. */
  private double transferRate(Engine engine, Engine peer, int length) throws Exception {
    Sequence s = engine.allocate(randomPrompt(engine, length));
    engine.step(List.of(s));
    transferBytes.reset();
    long start = System.nanoTime();
    KvExport export = engine.exportKv(s);
    export.writeTo(transferBytes);
    Sequence imported = peer.importKv(transferBytes.readBack());
    long nanos = System.nanoTime() - start;
    engine.release(s);
    peer.release(imported);
    return transferBytes.size() / 1e6 / (nanos / 1e9);
  }

  /**
   * The exported bytes, in one buffer kept from run to run. A fresh multi-megabyte array per run
   * is a humongous allocation for G1, and those made the figure swing between 100 and 700 MB/s
   * (1.6-1.9 GB/s with the parallel collector); this measures the engine's copies instead.
   */
  private static final class ReusableBytes extends ByteArrayOutputStream {
    InputStream readBack() {
      return new ByteArrayInputStream(buf, 0, count);
    }
  }

  private static int argmax(float[] values) {
    int best = 0;
    for (int i = 1; i < values.length; i++) {
      if (values[i] > values[best]) {
        best = i;
      }
    }
    return best;
  }

  private static long usedHeap() {
    for (int i = 0; i < 3; i++) {
      System.gc();
    }
    return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
  }
}
