package io.duet.engine.tokenizer;

import io.duet.engine.llama.Llama2cTokenizer;
import io.duet.engine.llama.QuadraticLlama2cEncoder;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.function.Function;

/**
 * Tokenizing time against prompt length, before (the quadratic merge loops the tests keep as
 * references) and after (the priority-queue merge), for llama2.c's and DeepSeek-V3's tokenizers.
 * Prints a table; the figures are in docs/performance.md. Each figure is the least CPU time of the
 * tokenizing thread over a few runs, after a warm-up. A quadratic run that would take minutes is
 * estimated from the previous length instead (times four per doubling).
 *
 * <pre>
 * mvn -B -q -pl engine -am test-compile
 * mvn -B -q -pl engine dependency:build-classpath -Dmdep.outputFile=/tmp/cp.txt
 * java -cp engine/target/classes:engine/target/test-classes:$(cat /tmp/cp.txt) \
 *     io.duet.engine.tokenizer.TokenizerBench ../shared/models
 * </pre>
 */
public final class TokenizerBench {

  private static final int[] LENGTHS = {16 * 1024, 128 * 1024, 1024 * 1024};

  private TokenizerBench() {
  }

  public static void main(String[] args) throws IOException {
    Path models = Path.of(args.length > 0 ? args[0] : "../shared/models");
    Llama2cTokenizer llama = Llama2cTokenizer.load(models.resolve("tokenizer.bin"));
    QuadraticLlama2cEncoder llamaBefore = QuadraticLlama2cEncoder.load(
        models.resolve("tokenizer.bin"));
    HfTokenizer deepSeek = HfTokenizer.open(models.resolve("deepseek-v3-tokenizer"));
    HfTokenizer deepSeekBefore = deepSeek.withMerger(QuadraticMerger::mergeAll);
    // The JIT compiles the merge loops before anything is timed.
    for (int i = 0; i < 20; i++) {
      llama.encode(prose(LENGTHS[0]), true);
      deepSeek.encode(prose(LENGTHS[0]), true);
    }

    System.out.printf("%-28s %9s %14s %10s%n", "tokenizer, text", "chars", "before ms",
        "after ms");
    for (String kind : new String[] {"prose", "CJK run"}) {
      Row llamaRow = new Row("llama2.c 32K, " + kind, t -> llamaBefore.encode(t, true),
          t -> llama.encode(t, true));
      Row deepSeekRow = new Row("DeepSeek-V3, " + kind, t -> deepSeekBefore.encode(t, true),
          t -> deepSeek.encode(t, true));
      for (int length : LENGTHS) {
        String text = kind.equals("prose") ? prose(length) : "深度求索".repeat(length / 4);
        llamaRow.print(text);
        deepSeekRow.print(text);
      }
    }
  }

  /** One tokenizer on one kind of text, at growing lengths. */
  private static final class Row {
    private final String name;
    private final Function<String, int[]> before;
    private final Function<String, int[]> after;
    private double lastBeforeMs;
    private int lastLength;

    Row(String name, Function<String, int[]> before, Function<String, int[]> after) {
      this.name = name;
      this.before = before;
      this.after = after;
    }

    /**
     * Times both on {@code text}; a quadratic run that would take over two minutes (judged from
     * the previous length) is not run, and its estimate is printed instead.
     */
    void print(String text) {
      int[] ids = after.apply(text);
      double scale = Math.pow((double) text.length() / Math.max(1, lastLength), 2);
      String beforeMs;
      if (lastLength > 0 && lastBeforeMs * scale > 120_000) {
        lastBeforeMs *= scale;
        beforeMs = String.format("~%.0f (est.)", lastBeforeMs);
      } else {
        if (!Arrays.equals(before.apply(text), ids)) {
          throw new AssertionError(name + ": before and after differ");
        }
        lastBeforeMs = bestMs(before, text, text.length() > 100_000 ? 1 : 3);
        beforeMs = String.format("%.0f", lastBeforeMs);
      }
      lastLength = text.length();
      System.out.printf("%-28s %9d %14s %10.1f%n", name, text.length(), beforeMs,
          bestMs(after, text, 5));
    }
  }

  /**
   * The least CPU time of the calling thread over {@code runs} runs: on a shared machine the
   * wall clock also counts the time other processes held the cores.
   */
  private static double bestMs(Function<String, int[]> encode, String text, int runs) {
    ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    double best = Double.MAX_VALUE;
    for (int run = 0; run < runs; run++) {
      long start = threads.getCurrentThreadCpuTime();
      encode.apply(text);
      best = Math.min(best, (threads.getCurrentThreadCpuTime() - start) / 1e6);
    }
    return best;
  }

  /** English-like text with punctuation, digits and newlines, the same for every run. */
  private static String prose(int length) {
    String[] words = {"the", "model", "serves", "requests", "quickly,", "and", "tokens", "flow",
        "through", "prefill", "to", "decode.", "In", "2024", "it", "handled", "12345", "users;",
        "throughput", "was", "measured", "again.\n"};
    StringBuilder text = new StringBuilder(length + 16);
    Random random = new Random(1);
    while (text.length() < length) {
      text.append(words[random.nextInt(words.length)]).append(' ');
    }
    return text.substring(0, length);
  }
}
