package io.duet.engine.cli;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.FinishReason;
import io.duet.engine.Generation;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.engine.Tokenizer;
import io.duet.engine.llama.Llama2cTokenizer;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Mirrors llama2.c's {@code run MODEL -z -t -p -s -n -i}: prints the prompt and its
 * continuation exactly as run.c does (steps count positions, prompt included; generation stops
 * at BOS), then {@code achieved tok/s} on stderr. The prompt is prefilled in one batched pass
 * instead of token by token, which changes the speed, not the output.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
    description = "Generate text from a prompt, as llama2.c's run does.")
final class GenerateCommand implements Callable<Integer> {

  @Mixin
  EngineArguments engineArguments;

  @Option(names = "-z", description = "tokenizer.bin (default: ${DEFAULT-VALUE})")
  Path tokenizer = Path.of("tokenizer.bin");

  @Option(names = "-t", description = "temperature, 0 = greedy (default: ${DEFAULT-VALUE})")
  float temperature = 1.0f;

  @Option(names = "-p", description = "top-p in (0, 1); other values sample the full "
      + "distribution (default: ${DEFAULT-VALUE})")
  float topP = 0.9f;

  @Option(names = "-k", description = "top-k, 0 = off (default: ${DEFAULT-VALUE}; not in run.c)")
  int topK;

  @Option(names = "-s", description = "random seed, 0 = time based (default: ${DEFAULT-VALUE})")
  long seed;

  @Option(names = "-n", description = "positions to run, prompt included; 0 = the model's "
      + "context (default: ${DEFAULT-VALUE})")
  int steps = 256;

  @Option(names = "-i", description = "prompt (default: empty)")
  String prompt = "";

  @Option(names = "--warmup", description = "decode steps to run first so the JIT has compiled "
      + "the forward pass before the timed run (default: ${DEFAULT-VALUE}; not in run.c)")
  int warmup;

  /** Where the text goes; stdout unless a test captures it. */
  PrintStream out = System.out;

  @Override
  public Integer call() throws Exception {
    EngineOptions options = engineArguments.engineOptions().tokenizerPath(tokenizer)
        .maxSequences(1);
    try (Engine engine = Engine.open(options)) {
      if (warmup > 0) {
        System.err.printf("warm-up: %d decode steps in %d ms%n", warmup, engine.warmUp(warmup));
      }
      run(engine, out);
    }
    return 0;
  }

  private void run(Engine engine, PrintStream out) {
    Tokenizer tok = engine.tokenizer();
    int bos = engine.info().bosToken();
    int seqLen = engine.info().contextLength();
    int limit = steps <= 0 || steps > seqLen ? seqLen : steps;
    int[] promptTokens = tok.encode(prompt, true);
    int pos = 0;
    for (; pos < Math.min(limit, promptTokens.length - 1); pos++) {
      print(out, tok.decode(promptTokens[pos], promptTokens[pos + 1]));
    }
    if (pos < limit) {
      long rngSeed = seed > 0 ? seed : System.currentTimeMillis() / 1000;
      // As run.c: the steps count positions, prompt included, and only BOS stops the text.
      SamplingParams params = new SamplingParams(temperature, topK, topP, rngSeed, limit - pos,
          List.of(bos), List.of(), true);
      Printer printer = new Printer(tok, out, promptTokens[promptTokens.length - 1]);
      new OfflineGenerator(engine, 1).generateAll(List.of(promptTokens), params, printer);
      out.print('\n');
      out.flush();
      printer.report(promptTokens.length);
    } else {
      out.print('\n');
      out.flush();
    }
  }

  /** Prints each generated token as it comes and times the prompt and the generation. */
  private static final class Printer implements OfflineGenerator.Observer {
    private final Tokenizer tokenizer;
    private final PrintStream out;
    private int previous;
    private long admitted;
    private long firstToken;
    private long lastToken;
    private int generated;

    Printer(Tokenizer tokenizer, PrintStream out, int lastPromptToken) {
      this.tokenizer = tokenizer;
      this.out = out;
      this.previous = lastPromptToken;
    }

    @Override
    public void onAdmit(int index) {
      admitted = System.nanoTime();
    }

    @Override
    public void onToken(int index, Generation.Delta delta) {
      long now = System.nanoTime();
      if (delta.finish() == FinishReason.STOP) {
        return; // the stop token is not text
      }
      print(out, tokenizer.decode(previous, delta.token()));
      previous = delta.token();
      if (generated++ == 0) {
        firstToken = now;
      }
      lastToken = now;
    }

    void report(int promptLength) {
      if (generated > 1) {
        System.err.printf("achieved tok/s: %f%n",
            (generated - 1) / ((lastToken - firstToken) / 1e9));
      }
      if (generated > 0) {
        System.err.printf("prompt: %d tokens prefilled in %.1f ms%n", promptLength,
            (firstToken - admitted) / 1e6);
      }
    }
  }

  private static void print(PrintStream out, byte[] piece) {
    if (Llama2cTokenizer.isPrintable(piece)) {
      out.write(piece, 0, piece.length);
      out.flush();
    }
  }
}
