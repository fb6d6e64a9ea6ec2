package io.duet.engine.cli;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import io.duet.engine.Tokenizer;
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
    int seqLen = engine.config().seqLen();
    int limit = steps <= 0 || steps > seqLen ? seqLen : steps;
    long rngSeed = seed > 0 ? seed : System.currentTimeMillis() / 1000;
    SamplingParams params = new SamplingParams(temperature, topK, topP, rngSeed, seqLen,
        List.of(), List.of(), true);
    int[] promptTokens = tok.encode(prompt, true, false);
    int pos = 0;
    for (; pos < Math.min(limit, promptTokens.length - 1); pos++) {
      print(out, tok.decode(promptTokens[pos], promptTokens[pos + 1]));
    }
    if (pos < limit) {
      Sequence sequence = engine.allocate(promptTokens);
      Sampler sampler = new Sampler(params, engine.config().vocabSize());
      int token = promptTokens[promptTokens.length - 1];
      long prefillStart = System.nanoTime();
      engine.step(List.of(sequence));
      long prefillNanos = System.nanoTime() - prefillStart;
      long start = 0;
      int generated = 0;
      while (pos < limit) {
        int next = sampler.sample(sequence.logits());
        pos++;
        if (next == Tokenizer.BOS) {
          break;
        }
        print(out, tok.decode(token, next));
        token = next;
        generated++;
        if (start == 0) {
          start = System.nanoTime();
        }
        if (pos < limit) {
          engine.append(sequence, next);
          engine.step(List.of(sequence));
        }
      }
      long end = System.nanoTime();
      out.print('\n');
      out.flush();
      if (generated > 1) {
        System.err.printf("achieved tok/s: %f%n", (generated - 1) / ((end - start) / 1e9));
      }
      System.err.printf("prompt: %d tokens prefilled in %.1f ms%n", promptTokens.length,
          prefillNanos / 1e6);
      engine.release(sequence);
    } else {
      out.print('\n');
      out.flush();
    }
  }

  private static void print(PrintStream out, byte[] piece) {
    if (Tokenizer.isPrintable(piece)) {
      out.write(piece, 0, piece.length);
      out.flush();
    }
  }
}
