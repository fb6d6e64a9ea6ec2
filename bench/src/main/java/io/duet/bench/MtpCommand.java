package io.duet.bench;

import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Table;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
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
 * token to the last, with the share of drafts the steps kept; runs of the two alternate and the
 * median of each is reported. Greedy output must not change, and
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

  @Option(names = "--repeat", description = "runs of each, alternating, whose median is "
      + "reported (default: ${DEFAULT-VALUE})")
  int repeat = 3;

  @Override
  public Integer call() throws Exception {
    Table table = new Table(0, "MTP", "tokens/s (median)", "runs", "drafts", "accepted",
        "acceptance");
    JsonArray runs = new JsonArray();
    Progress progress = progress(2 * repeat);
    try (Engine off = Engine.open(options(false)); Engine on = Engine.open(options(true))) {
      Random random = new Random(engine.seed);
      List<int[]> prompts = new ArrayList<>();
      for (int i = 0; i < batch; i++) {
        prompts.add(random.ints(promptTokens, 0, off.info().vocabSize()).toArray());
      }
      off.warmUp(warmupSteps);
      on.warmUp(warmupSteps);
      // Alternating, so that a burst of load elsewhere on the machine hits both alike.
      Engine[] engines = {off, on};
      double[][] speeds = new double[2][repeat];
      long[][] drafts = new long[2][2];
      List<List<int[]>> outputs = List.of(new ArrayList<>(), new ArrayList<>());
      for (int r = 0; r < repeat; r++) {
        for (int m = 0; m < 2; m++) {
          progress.phase("MTP " + (m == 1 ? "on" : "off") + ", run " + (r + 1));
          Timing timing = new Timing();
          OfflineGenerator generator = new OfflineGenerator(engines[m], batch);
          List<OfflineGenerator.Completion> done = generator.generateAll(prompts,
              SamplingParams.greedy(tokens).withIgnoreEos(true), timing);
          speeds[m][r] = timing.tokensPerSecond();
          drafts[m][0] += generator.draftsProposed();
          drafts[m][1] += generator.draftsAccepted();
          if (r == 0) {
            for (OfflineGenerator.Completion c : done) {
              outputs.get(m).add(c.outputTokens());
            }
          }
        }
      }
      progress.done();
      for (int i = 0; i < batch; i++) {
        if (!Arrays.equals(outputs.get(0).get(i), outputs.get(1).get(i))) {
          throw badParameter("sequence " + i + " differs with MTP on: greedy output must not");
        }
      }
      for (int m = 0; m < 2; m++) {
        double median = median(speeds[m]);
        double rate = drafts[m][0] == 0 ? 0 : (double) drafts[m][1] / drafts[m][0];
        table.row(m == 1 ? "on" : "off", Table.num(median, 1), Arrays.toString(
            Arrays.stream(speeds[m]).map(v -> Math.round(v * 10) / 10.0).toArray()),
            drafts[m][0], drafts[m][1], m == 1 ? Table.num(100 * rate, 1) + "%" : "-");
        runs.add(new JsonObject().put("mtp", m == 1).put("tokensPerSecond", median)
            .put("drafts", drafts[m][0]).put("accepted", drafts[m][1])
            .put("acceptanceRate", rate));
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

  private EngineOptions options(boolean mtp) {
    return engine.engineOptions(model).mtp(mtp).maxSequences(batch).kvCacheBytes(64L << 20);
  }

  private static double median(double[] values) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    int n = sorted.length;
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
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
