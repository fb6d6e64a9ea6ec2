package io.duet.bench;

import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Table;
import io.duet.engine.Engine;
import io.duet.engine.Generation;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Decode throughput of one engine without and with MTP speculative decoding: the same random
 * prompts generated greedily to the same length as one continuous batch, timed from the first
 * token to the last, with the share of drafts the steps kept. Greedy output must not change, and
 * the command fails if it does.
 */
@Command(name = "mtp", mixinStandardHelpOptions = true,
    description = "Decode tokens/s with MTP off and on, and the drafts' acceptance rate.")
final class MtpCommand extends BenchCommand {

  @Parameters(index = "0", paramLabel = "MODEL", description = "a DeepSeek-V3 checkpoint with "
      + "an MTP module (e.g. engine.jar random-deepseek DIR --draftable)")
  Path model;

  @Mixin
  EngineBenchOptions engine;

  @Option(names = "--batch", description = "sequences decoded together (default: "
      + "${DEFAULT-VALUE})")
  int batch = 8;

  @Option(names = "--prompt-tokens", description = "prompt length (default: ${DEFAULT-VALUE})")
  int promptTokens = 16;

  @Option(names = "--tokens", description = "tokens generated per sequence (default: "
      + "${DEFAULT-VALUE})")
  int tokens = 128;

  @Option(names = "--warmup-steps", description = "decode steps of the engine's warm-up "
      + "(default: ${DEFAULT-VALUE})")
  int warmupSteps = 256;

  @Override
  public Integer call() throws Exception {
    Table table = new Table(0, "MTP", "tokens/s", "drafts", "accepted", "acceptance");
    JsonArray runs = new JsonArray();
    Random random = new Random(engine.seed);
    List<int[]> prompts = null;
    Progress progress = progress(2);
    List<int[]> outputs = new ArrayList<>();
    for (boolean mtp : new boolean[] {false, true}) {
      progress.phase("MTP " + (mtp ? "on" : "off"));
      try (Engine e = Engine.open(engine.engineOptions(model).mtp(mtp).maxSequences(batch))) {
        if (prompts == null) {
          int vocab = e.info().vocabSize();
          prompts = new ArrayList<>();
          for (int i = 0; i < batch; i++) {
            prompts.add(random.ints(promptTokens, 0, vocab).toArray());
          }
        }
        e.warmUp(warmupSteps);
        Timing timing = new Timing();
        OfflineGenerator generator = new OfflineGenerator(e, batch);
        List<OfflineGenerator.Completion> done = generator.generateAll(prompts,
            SamplingParams.greedy(tokens).withIgnoreEos(true), timing);
        done.forEach(c -> outputs.add(c.outputTokens()));
        double tokensPerSecond = timing.tokensPerSecond();
        double rate = generator.draftsProposed() == 0 ? 0
            : (double) generator.draftsAccepted() / generator.draftsProposed();
        table.row(mtp ? "on" : "off", Table.num(tokensPerSecond, 1), generator.draftsProposed(),
            generator.draftsAccepted(), mtp ? Table.num(100 * rate, 1) + "%" : "-");
        runs.add(new JsonObject().put("mtp", mtp).put("tokensPerSecond", tokensPerSecond)
            .put("drafts", generator.draftsProposed())
            .put("accepted", generator.draftsAccepted()).put("acceptanceRate", rate));
      }
    }
    progress.done();
    for (int i = 0; i < batch; i++) {
      if (!Arrays.equals(outputs.get(i), outputs.get(batch + i))) {
        throw badParameter("sequence " + i + " differs with MTP on: greedy output must not");
      }
    }
    out().println(model + ": " + batch + " sequences, prompts of " + promptTokens + " tokens, "
        + tokens + " tokens each, greedy (the same with MTP on and off)");
    table.print(out());
    out().println(machine());
    writeJson(new JsonObject().put("model", model.toString()).put("batch", batch)
        .put("tokens", tokens).put("runs", runs).put("machine", machineJson()));
    return 0;
  }

  /** The decode's tokens and the time from the first token to the last. */
  private static final class Timing implements OfflineGenerator.Observer {
    private long first;
    private long last;
    private long count;

    @Override
    public void onToken(int index, Generation.Delta delta) {
      long now = System.nanoTime();
      if (count++ == 0) {
        first = now;
      }
      last = now;
    }

    double tokensPerSecond() {
      return (count - 1) / ((last - first) / 1e9);
    }
  }
}
