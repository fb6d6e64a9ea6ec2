package io.duet.bench;

import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Table;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Sampler;
import io.duet.engine.Sequence;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Decode throughput of one engine holding every routed expert against groups of engines that
 * split them (expert parallelism, in one JVM), with the time each rank's steps spend in the
 * group's all-to-all. Every rank decodes its own batch of sequences, greedy, the ranks of a group
 * stepping together each on a thread of its own, as a decode instance's ranks do.
 */
@Command(name = "expert-parallel", mixinStandardHelpOptions = true,
    description = "Decode tokens/s of 1 vs N expert-parallel ranks in one JVM, and the "
        + "all-to-all time per step.")
final class ExpertParallelCommand extends BenchCommand {

  @Parameters(index = "0", paramLabel = "MODEL", description = "a checkpoint with routed "
      + "experts (e.g. engine.jar random-deepseek DIR)")
  Path model;

  @Option(names = "--ranks", split = ",", description = "expert-parallel sizes to run "
      + "(default: ${DEFAULT-VALUE})")
  List<Integer> ranks = List.of(1, 4);

  @Option(names = "--batch", description = "sequences each rank decodes (default: "
      + "${DEFAULT-VALUE})")
  int batch = 8;

  @Option(names = "--prompt-tokens", description = "prompt length (default: ${DEFAULT-VALUE})")
  int promptTokens = 32;

  @Option(names = "--steps", description = "measured decode steps (default: ${DEFAULT-VALUE})")
  int steps = 64;

  @Option(names = "--warmup-steps", description = "decode steps before measuring (default: "
      + "${DEFAULT-VALUE})")
  int warmupSteps = 32;

  @Option(names = "--threads", description = "compute threads per rank; 0: the cores divided "
      + "among the ranks, at least 1 (default: ${DEFAULT-VALUE})")
  int threads = 0;

  @Override
  public Integer call() throws Exception {
    Table table = new Table(0, "ranks", "threads/rank", "tokens/s", "step ms",
        "all-to-all ms/step", "all-to-all %");
    JsonArray runs = new JsonArray();
    Progress progress = progress(ranks.size());
    for (int size : ranks) {
      progress.phase(size + " rank" + (size == 1 ? "" : "s"));
      int perRank = threads > 0 ? threads
          : Math.max(1, Runtime.getRuntime().availableProcessors() / size);
      List<Engine> engines = Engine.openRanks(new EngineOptions().modelPath(model)
          .threads(perRank).expertParallel(size).maxSequences(Math.max(batch, 1))
          .kvCacheBytes(64L << 20), size);
      try {
        Result result = run(engines);
        double stepMillis = result.nanos / 1e6 / steps;
        double exchangeMillis = result.exchangeNanos / 1e6 / steps;
        table.row(size, perRank, Table.num(result.tokensPerSecond(), 1),
            Table.num(stepMillis, 2), Table.num(exchangeMillis, 2),
            Table.num(100 * exchangeMillis / stepMillis, 0));
        runs.add(new JsonObject().put("ranks", size).put("threadsPerRank", perRank)
            .put("tokensPerSecond", result.tokensPerSecond()).put("stepMillis", stepMillis)
            .put("allToAllMillisPerStep", exchangeMillis));
      } finally {
        engines.forEach(Engine::close);
      }
    }
    progress.done();
    out().println(model + ": " + batch + " sequences per rank, prompts of " + promptTokens
        + " tokens, " + steps + " decode steps measured after " + warmupSteps);
    table.print(out());
    out().println(machine());
    writeJson(new JsonObject().put("model", model.toString()).put("batch", batch)
        .put("steps", steps).put("runs", runs).put("machine", machineJson()));
    return 0;
  }

  /** What one group did in the measured steps; the exchange time is the ranks' mean. */
  private record Result(long tokens, long nanos, long exchangeNanos) {
    double tokensPerSecond() {
      return tokens / (nanos / 1e9);
    }
  }

  private Result run(List<Engine> engines) {
    List<CompletableFuture<long[]>> ranks = new ArrayList<>();
    for (int r = 0; r < engines.size(); r++) {
      Engine engine = engines.get(r);
      long seed = r;
      ranks.add(CompletableFuture.supplyAsync(() -> decode(engine, seed),
          task -> new Thread(task, "bench-rank").start()));
    }
    long nanos = 0;
    long exchange = 0;
    for (CompletableFuture<long[]> rank : ranks) {
      long[] figures = rank.join();
      nanos = Math.max(nanos, figures[0]);
      exchange += figures[1];
    }
    return new Result((long) engines.size() * batch * steps, nanos, exchange / engines.size());
  }

  /**
   * One rank: prefills its batch, decodes the warm-up steps, then the measured ones; every rank
   * runs the same number of steps, as the ranks of a group must.
   *
   * @return the measured steps' nanoseconds and the all-to-all's share of them
   */
  private long[] decode(Engine engine, long seed) {
    Random random = new Random(seed);
    int vocab = engine.info().vocabSize();
    List<Sequence> sequences = new ArrayList<>();
    for (int i = 0; i < batch; i++) {
      int[] prompt = random.ints(promptTokens, 0, vocab).toArray();
      sequences.add(engine.allocate(prompt));
    }
    try {
      engine.step(sequences);
      long start = 0;
      long exchangeBefore = 0;
      for (int step = 0; step < warmupSteps + steps; step++) {
        if (step == warmupSteps) {
          start = System.nanoTime();
          exchangeBefore = engine.expertExchangeNanos();
        }
        for (Sequence s : sequences) {
          engine.append(s, Sampler.argmax(s.logits()));
        }
        engine.step(sequences);
      }
      return new long[] {System.nanoTime() - start,
          engine.expertExchangeNanos() - exchangeBefore};
    } finally {
      sequences.forEach(engine::release);
    }
  }
}
