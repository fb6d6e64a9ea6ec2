package io.duet.engine.cli;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.FinishReason;
import io.duet.engine.Generation;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.engine.Tokenizer;
import io.duet.engine.llama.Llama2cArchitecture;
import io.duet.engine.llama.Llama2cTokenizer;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/**
 * Mirrors llama2.c's {@code run MODEL -z -t -p -s -n -i}: prints the prompt and its
 * continuation exactly as run.c does (steps count positions, prompt included; generation stops
 * at BOS), then {@code achieved tok/s} on stderr. The prompt is prefilled in one batched pass
 * instead of token by token, which changes the speed, not the output.
 *
 * <p>The model may also be a Hugging Face checkpoint directory (DeepSeek-V3), whose generation
 * stops at the model's end tokens. {@code --prompt-ids} gives the prompt as token ids and
 * {@code --print-ids} prints the generated ids instead of text, for checking against outside
 * references and for models without a tokenizer.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
    description = "Generate text from a prompt, as llama2.c's run does.")
final class GenerateCommand implements Callable<Integer> {

  @Mixin
  EngineArguments engineArguments;

  @Spec
  CommandSpec spec;

  @Option(names = "-z", description = "tokenizer: llama2.c's tokenizer.bin (default: "
      + "tokenizer.bin for a checkpoint file; a checkpoint directory's own tokenizer.json)")
  Path tokenizer;

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

  @Option(names = "--prompt-ids", split = ",", paramLabel = "ID",
      description = "the prompt as token ids, e.g. 0,17,42 (instead of -i; not in run.c)")
  int[] promptIds;

  @Option(names = "--print-ids", description = "print only the generated token ids, "
      + "space-separated on one line, instead of the text (not in run.c)")
  boolean printIds;

  @Option(names = "--warmup", description = "decode steps to run first so the JIT has compiled "
      + "the forward pass before the timed run (default: ${DEFAULT-VALUE}; not in run.c)")
  int warmup;

  /** A switch written {@code on} or {@code off}. */
  enum Switch { on, off }

  @Option(names = "--mtp", paramLabel = "on|off", description = "speculative decoding with the "
      + "model's multi-token prediction module (DeepSeek-V3): one draft token per step, "
      + "verified by the next (default: ${DEFAULT-VALUE}; not in run.c)")
  Switch mtp = Switch.off;

  /** Where the text goes; stdout unless a test captures it. */
  PrintStream out = System.out;

  @Override
  public Integer call() throws Exception {
    Path tokenizerPath = tokenizer == null && Files.isRegularFile(engineArguments.model)
        ? Path.of("tokenizer.bin") : tokenizer;
    EngineOptions options = engineArguments.engineOptions().tokenizerPath(tokenizerPath)
        .maxSequences(1).mtp(mtp == Switch.on);
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
    if (tok == null && (promptIds == null || !printIds)) {
      throw new ParameterException(spec.commandLine(), engine.info().architecture() + " model "
          + engineArguments.model + " has no tokenizer: give --prompt-ids and --print-ids");
    }
    int seqLen = engine.info().contextLength();
    int limit = steps <= 0 || steps > seqLen ? seqLen : steps;
    int[] promptTokens = promptIds != null ? promptIds : tok.encode(prompt, true);
    if (promptTokens.length == 0) {
      throw new ParameterException(spec.commandLine(), "--prompt-ids needs at least one id");
    }
    int pos = Math.min(limit, promptTokens.length - 1);
    for (int i = 0; i < pos && !printIds; i++) {
      print(out, tok.decode(promptTokens[i], promptTokens[i + 1]));
    }
    if (pos < limit) {
      long rngSeed = seed > 0 ? seed : System.currentTimeMillis() / 1000;
      // As run.c: the steps count positions, prompt included, and for llama2.c models only BOS
      // stops the text; other models stop at their end tokens.
      boolean llama2c = engine.info().architecture().equals(Llama2cArchitecture.NAME);
      List<Integer> stops = llama2c ? List.of(engine.info().bosToken()) : List.of();
      SamplingParams params = new SamplingParams(temperature, topK, topP, rngSeed, limit - pos,
          stops, List.of(), llama2c);
      Printer printer = new Printer(printIds ? null : tok, out,
          promptTokens[promptTokens.length - 1]);
      OfflineGenerator generator = new OfflineGenerator(engine, 1);
      generator.generateAll(List.of(promptTokens), params, printer);
      out.print('\n');
      out.flush();
      printer.report(promptTokens.length);
      if (engine.draftTokens() > 0) {
        System.err.printf("MTP drafts: %d of %d accepted%n", generator.draftsAccepted(),
            generator.draftsProposed());
      }
    } else {
      out.print('\n');
      out.flush();
    }
  }

  /**
   * Prints each generated token as it comes (its text, or with no tokenizer its id, the end token
   * included) and times the prompt and the generation.
   */
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
      if (tokenizer == null) {
        out.print((generated == 0 ? "" : " ") + delta.token());
        out.flush();
      } else if (delta.finish() == FinishReason.STOP) {
        return; // the stop token is not text
      } else {
        print(out, tokenizer.decode(previous, delta.token()));
      }
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
