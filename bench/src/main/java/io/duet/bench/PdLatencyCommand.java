package io.duet.bench;

import io.duet.bench.impl.EngineLoop;
import io.duet.bench.impl.Futures;
import io.duet.bench.impl.Latency;
import io.duet.bench.impl.LatencySummary;
import io.duet.bench.impl.PdPipeline;
import io.duet.bench.impl.Progress;
import io.duet.bench.impl.RawLoopback;
import io.duet.bench.impl.Prompts;
import io.duet.bench.impl.RequestTiming;
import io.duet.bench.impl.Table;
import io.duet.contract.SamplingSpec;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.ModelInfo;
import io.duet.engine.SamplingParams;
import io.duet.engine.Tokenizer;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IntSummaryStatistics;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Latency of a request through an embedded 1P1D compared with the engine alone, on the same
 * prompts: TTFT (start to first token), the second token (first to second), TPOT (mean time per
 * output token after the first), ITL (gap between token events) and E2E, as p50/p90/p99 over
 * the requests, plus output throughput. Every request generates exactly {@code --max-tokens}
 * tokens (greedy, EOS ignored). Each concurrency level gets its own prompts, so no run profits
 * from the prefix cache of an earlier one. Both setups live in one JVM side by side, and each
 * run is measured in rounds that alternate between them. Then the KV pull's throughput (a
 * prompt's KV bytes over the pull stage's p50) next to raw loopback TCP moving the same bytes in
 * the same run.
 */
@Command(name = "pd-latency", mixinStandardHelpOptions = true,
    description = "TTFT/TPOT/ITL of an embedded 1P1D (local event bus, KV over loopback TCP or "
        + "the same-JVM handoff) vs the engine alone, and the KV pull vs raw loopback TCP.")
final class PdLatencyCommand extends BenchCommand {

  @Parameters(index = "0", paramLabel = "MODEL", description = "llama2.c checkpoint")
  Path model;

  @Option(names = {"-z", "--tokenizer"}, required = true, description = "tokenizer.bin")
  Path tokenizer;

  @Option(names = "--requests", description = "measured requests per run (default: ${DEFAULT-VALUE})")
  int requests = 16;

  @Option(names = "--prompt-tokens", description = "prompt length in tokens, BOS included "
      + "(default: ${DEFAULT-VALUE})")
  int promptTokens = 128;

  @Option(names = "--max-tokens", description = "output tokens per request (default: ${DEFAULT-VALUE})")
  int maxTokens = 64;

  @Option(names = "--concurrency", split = ",", description = "requests in flight; a list "
      + "runs each level (default: ${DEFAULT-VALUE})")
  List<Integer> concurrency = List.of(1);

  @Option(names = "--warmup", description = "warm-up requests before each measured run "
      + "(default: ${DEFAULT-VALUE}; after only 4 the JIT was still compiling the 1P1D's "
      + "cluster and event-bus code, which doubled its TTFT)")
  int warmup = 32;

  @Option(names = "--path-warmup", description = "requests of 2 output tokens, at the "
      + "largest concurrency, through each setup before its first warm-up (default: "
      + "${DEFAULT-VALUE}); the proxy's, the event bus's and the KV path's code runs once per "
      + "request, so it is compiled as in a server that has served thousands only after many; "
      + "their prompts are as long as the others, up to 128 tokens (shorter ones made the "
      + "kernels' compiled code slower for the longer prompts that followed)")
  int pathWarmup = 1000;

  /** The longest prompt of a {@code --path-warmup} request, and its output tokens. */
  private static final int PATH_WARMUP_PROMPT_TOKENS = 128;
  private static final int PATH_WARMUP_MAX_TOKENS = 2;

  @Option(names = "--kv-layer-streaming", negatable = true, defaultValue = "false",
      description = "1P1D moves the KV layer by layer while prefill "
          + "runs (proxy.kv-layer-streaming); --no-kv-layer-streaming: once it has ended "
          + "(default: ${DEFAULT-VALUE})")
  boolean kvLayerStreaming;

  @Option(names = "--kv-path", description = "how the 1P1D's decode verticle takes the KV: "
      + "tcp (over loopback TCP) or same-jvm (copied from the prefill engine's cache, "
      + "kv-transfer.same-jvm-handoff) (default: ${DEFAULT-VALUE})")
  String kvPath = "same-jvm";

  /** Rounds of a measured run: in each, the engine alone and then the 1P1D, or the reverse. */
  private static final int MEASURED_ROUNDS = 4;

  /** Raw loopback transfers timed, after two to warm up; the median counts. */
  private static final int RAW_TRANSFERS = 16;

  @Option(names = "--kv-cache-mb", description = "KV cache per engine (default: ${DEFAULT-VALUE})")
  int kvCacheMb = 256;

  @Mixin
  EngineBenchOptions engineBench;

  /** One concurrency level's prompts and results. */
  private static final class Run {
    final int concurrency;
    final List<String> warmupTexts;
    final List<String> texts;
    LatencySummary engine;
    LatencySummary pd;
    /** Raw loopback TCP moving one prompt's KV bytes: the median time, in nanoseconds. */
    long rawNanos;

    Run(int concurrency, List<String> warmupTexts, List<String> texts) {
      this.concurrency = concurrency;
      this.warmupTexts = warmupTexts;
      this.texts = texts;
    }
  }

  @Override
  public Integer call() throws Exception {
    requirePositive(requests, "--requests");
    requirePositive(promptTokens, "--prompt-tokens");
    requirePositive(maxTokens, "--max-tokens");
    requirePositive(kvCacheMb, "--kv-cache-mb");
    for (int c : concurrency) {
      requirePositive(c, "--concurrency");
    }
    requireNotNegative(warmup, "--warmup");
    requireNotNegative(pathWarmup, "--path-warmup");
    if (!kvPath.equals("tcp") && !kvPath.equals("same-jvm")) {
      throw badParameter("--kv-path is tcp or same-jvm, not " + kvPath);
    }
    EngineOptions options = engineBench.engineOptions(model).tokenizerPath(tokenizer)
        .kvCacheBytes((long) kvCacheMb << 20);
    Progress progress = progress(3 + 2 * concurrency.size() + (pathWarmup > 0 ? 1 : 0));
    List<Run> runs = new ArrayList<>();
    String description;
    IntSummaryStatistics promptLengths = new IntSummaryStatistics();
    SamplingParams params = SamplingParams.greedy(maxTokens).withIgnoreEos(true);
    SamplingSpec spec = SamplingSpec.greedy(maxTokens).ignoringEos();
    long kvBytesPerToken;
    try (Engine engine = Engine.open(options)) {
      ModelInfo info = engine.info();
      kvBytesPerToken = engine.layout().bytesPerToken();
      description = engine.description().toString();
      if (promptTokens + maxTokens > info.contextLength()) {
        throw badParameter("--prompt-tokens " + promptTokens + " + --max-tokens " + maxTokens
            + " exceed the model's context of " + info.contextLength() + " tokens");
      }
      progress.phase("building prompts");
      int maxConcurrency = concurrency.stream().mapToInt(Integer::intValue).max().orElse(1);
      Tokenizer tok = engine.tokenizer();
      long seed = engineBench.seed;
      for (int i = 0; i < concurrency.size(); i++) {
        List<String> warm = Prompts.texts(tok, seed * 1000 + 2 * i, warmup, promptTokens);
        List<String> measured = Prompts.texts(tok, seed * 1000 + 2 * i + 1, requests, promptTokens);
        measured.forEach(t -> promptLengths.accept(tok.encode(t, true).length));
        runs.add(new Run(concurrency.get(i), warm, measured));
      }
      progress.phase("starting 1P1D (prefill + decode verticles, cluster backend)");
      // Prefill and decode share this machine's cores, as in the embedded 1P1D.
      try (PdPipeline pipeline = PdPipeline.start(options.sharedCores(true), maxConcurrency,
          kvLayerStreaming, kvPath.equals("same-jvm"))) {
        if (pathWarmup > 0) {
          progress.phase("path warm-up: " + pathWarmup + " requests of "
              + PATH_WARMUP_MAX_TOKENS + " tokens through each setup");
          List<String> texts = Prompts.texts(tok, seed * 1000 - 1, pathWarmup,
              Math.min(promptTokens, PATH_WARMUP_PROMPT_TOKENS));
          runEngine(engine, texts, SamplingParams.greedy(PATH_WARMUP_MAX_TOKENS)
              .withIgnoreEos(true), maxConcurrency, progress);
          runPipeline(pipeline, "p", texts, SamplingSpec.greedy(PATH_WARMUP_MAX_TOKENS)
              .ignoringEos(), maxConcurrency, progress);
        }
        for (Run run : runs) {
          progress.phase("concurrency " + run.concurrency + ": warm-up of each setup");
          runEngine(engine, run.warmupTexts, params, run.concurrency, progress);
          runPipeline(pipeline, "w" + run.concurrency, run.warmupTexts, spec, run.concurrency,
              progress);
          progress.phase("concurrency " + run.concurrency + ": measuring, the setups in turn");
          measure(run, engine, params, pipeline, spec, progress);
        }
      }
    }
    long kvBytes = Math.round(kvBytesPerToken * promptLengths.getAverage());
    progress.phase("raw loopback TCP, " + kvBytes + " bytes");
    long rawNanos = rawLoopbackNanos(kvBytes);
    progress.done();
    report(description, options, promptLengths, runs, kvBytes, rawNanos);
    return 0;
  }

  /**
   * Measures {@code run} in rounds, the engine alone and the 1P1D in turn (which one goes first
   * alternates), so that a change in the machine's speed during the run weighs on both alike.
   */
  private void measure(Run run, Engine engine, SamplingParams params, PdPipeline pipeline,
      SamplingSpec spec, Progress progress) throws Exception {
    int rounds = Math.max(1, Math.min(MEASURED_ROUNDS, run.texts.size() / run.concurrency));
    List<RequestTiming> engineTimings = new ArrayList<>();
    List<RequestTiming> pdTimings = new ArrayList<>();
    double engineSeconds = 0;
    double pdSeconds = 0;
    for (int r = 0; r < rounds; r++) {
      List<String> texts = run.texts.subList(run.texts.size() * r / rounds,
          run.texts.size() * (r + 1) / rounds);
      for (int turn = 0; turn < 2; turn++) {
        long start = System.nanoTime();
        if ((r + turn) % 2 == 0) {
          List<RequestTiming> timings = runEngine(engine, texts, params, run.concurrency,
              progress);
          engineTimings.addAll(timings);
          engineSeconds += LatencySummary.wallSeconds(timings, start);
        } else {
          List<RequestTiming> timings = runPipeline(pipeline, "m" + run.concurrency + "-" + r,
              texts, spec, run.concurrency, progress);
          pdTimings.addAll(timings);
          pdSeconds += LatencySummary.wallSeconds(timings, start);
        }
      }
    }
    run.engine = new LatencySummary(engineTimings, engineSeconds);
    run.pd = new LatencySummary(pdTimings, pdSeconds);
  }

  /** The median time raw loopback TCP takes to move {@code bytes}, on a Vert.x of its own. */
  private static long rawLoopbackNanos(long bytes) throws Exception {
    Vertx vertx = Vertx.vertx();
    try {
      RawLoopback raw = new RawLoopback(vertx);
      Futures.await(raw.start(), 30);
      long[] nanos = new long[RAW_TRANSFERS];
      for (int i = -2; i < RAW_TRANSFERS; i++) {
        long took = Futures.await(raw.transfer(bytes), 60);
        if (i >= 0) {
          nanos[i] = took;
        }
      }
      Futures.await(raw.close(), 30);
      Arrays.sort(nanos);
      return nanos[RAW_TRANSFERS / 2];
    } finally {
      Futures.await(vertx.close(), 30);
    }
  }

  private static List<RequestTiming> runEngine(Engine engine, List<String> texts,
      SamplingParams params, int concurrency, Progress progress) {
    if (texts.isEmpty()) {
      return List.of();
    }
    List<int[]> prompts = new ArrayList<>();
    long[] tokenizeNanos = new long[texts.size()];
    for (int i = 0; i < texts.size(); i++) {
      long start = System.nanoTime();
      prompts.add(engine.tokenizer().encode(texts.get(i), true));
      tokenizeNanos[i] = System.nanoTime() - start;
    }
    return EngineLoop.run(engine, prompts, tokenizeNanos, params, concurrency,
        done -> progress.detail("request " + done + "/" + texts.size()));
  }

  private static List<RequestTiming> runPipeline(PdPipeline pipeline, String idPrefix,
      List<String> texts, SamplingSpec spec, int concurrency, Progress progress) throws Exception {
    if (texts.isEmpty()) {
      return List.of();
    }
    return Futures.await(pipeline.run(idPrefix, texts, spec, concurrency,
        done -> progress.detail("request " + done + "/" + texts.size())), 600);
  }

  private void report(String description, EngineOptions options,
      IntSummaryStatistics promptLengths, List<Run> runs, long kvBytes, long rawNanos)
      throws Exception {
    PrintWriter out = out();
    out.printf("pd-latency: %s%n", description);
    out.printf("%d threads per engine; %d requests per run, prompts of %d tokens "
            + "(built from random vocabulary pieces: %d-%d tokens), %d output tokens each "
            + "(greedy, EOS ignored), %d warm-up requests per run and setup (after %d of 2 "
            + "tokens), measured in up to %d rounds that alternate the setups%n", options.threads(),
        requests, promptTokens, promptLengths.getMin(), promptLengths.getMax(), maxTokens, warmup,
        pathWarmup, MEASURED_ROUNDS);
    out.println(machine());
    out.println("engine = one Engine stepping a continuous batch in one thread, its TTFT "
        + "including the prompt's tokenizing; 1P1D = prefill + decode verticles with their own "
        + "engines, KV "
        + (kvPath.equals("tcp") ? "over loopback TCP" : "by the same-JVM handoff")
        + (kvLayerStreaming ? " streamed while prefill runs" : " after prefill")
        + ", tokens via the local event bus and the proxy's cluster backend; both get the "
        + "prompt's text and detokenize the tokens");
    out.println();
    JsonArray jsonRuns = new JsonArray();
    for (Run run : runs) {
      out.printf("concurrency %d%n", run.concurrency);
      Table table = new Table(2, "metric", "unit", "engine p50", "engine p90", "engine p99",
          "1P1D p50", "1P1D p90", "1P1D p99", "delta p50", "delta p99");
      row(table, "TTFT", run.engine.ttft, run.pd.ttft);
      row(table, "2nd token", run.engine.secondToken, run.pd.secondToken);
      row(table, "TPOT", run.engine.tpot, run.pd.tpot);
      row(table, "ITL", run.engine.itl, run.pd.itl);
      row(table, "E2E", run.engine.e2e, run.pd.e2e);
      table.print(out);
      Table stages = new Table(2, "1P1D TTFT stage", "unit", "p50", "p90", "p99");
      stage(stages, "prefill queue", run.pd.prefillQueue);
      stage(stages, "prefill compute", run.pd.prefill);
      stage(stages, "decode queue", run.pd.decodeQueue);
      stage(stages, "KV pull and import", run.pd.kvPull);
      stage(stages, "rest: proxy and event bus", run.pd.ttftRest);
      stages.print(out);
      Table totals = new Table(1, "setup", "requests", "output tokens", "wall s", "output tok/s",
          "coalesced events");
      totals(totals, "engine", run.engine);
      totals(totals, "1P1D", run.pd);
      totals.print(out);
      JsonObject delta = new JsonObject()
          .put("ttftP50Ms", delta(run.engine.ttft, run.pd.ttft, 50))
          .put("ttftP99Ms", delta(run.engine.ttft, run.pd.ttft, 99))
          .put("tpotP50Ms", delta(run.engine.tpot, run.pd.tpot, 50))
          .put("tpotP99Ms", delta(run.engine.tpot, run.pd.tpot, 99))
          .put("itlP50Ms", delta(run.engine.itl, run.pd.itl, 50))
          .put("itlP99Ms", delta(run.engine.itl, run.pd.itl, 99));
      jsonRuns.add(new JsonObject().put("concurrency", run.concurrency)
          .put("engine", run.engine.toJson()).put("pd1p1d", run.pd.toJson()).put("delta", delta));
    }
    double rawMbps = kvBytes / (rawNanos / 1e3);
    out.printf("KV of a prompt (%d tokens on average): %d bytes; raw loopback TCP moves them in "
        + "%.3f ms (median of %d, 256 KiB writes): %.0f MB/s%n", Math.round(
            promptLengths.getAverage()), kvBytes, rawNanos / 1e6, RAW_TRANSFERS, rawMbps);
    Table throughput = new Table(1, "KV pull (" + kvPath + ")", "pull p50 ms", "pull MB/s",
        "raw TCP MB/s", "pull / raw %");
    for (Run run : runs) {
      double pullMbps = pullMbps(kvBytes, run);
      throughput.row("concurrency " + run.concurrency,
          Table.num(run.pd.kvPull.percentile(50, LatencySummary.MS), 3), Table.num(pullMbps, 0),
          Table.num(rawMbps, 0), Table.num(100 * pullMbps / rawMbps, 0));
      jsonRuns.getJsonObject(runs.indexOf(run)).put("kvPullMBps", pullMbps);
    }
    throughput.print(out);
    if (kvLayerStreaming) {
      out.println("(streamed: the pull spans the prefill's compute, so its MB/s is a lower bound "
          + "of what the path moves)");
    }
    out.flush();
    writeJson(new JsonObject().put("command", "pd-latency").put("machine", machineJson())
        .put("model", model.toString()).put("engine", description).put("threadsPerEngine", options.threads())
        .put("requests", requests).put("promptTokens", promptTokens)
        .put("promptTokensMin", promptLengths.getMin()).put("promptTokensMax", promptLengths.getMax())
        .put("maxTokens", maxTokens).put("warmup", warmup).put("pathWarmup", pathWarmup)
        .put("kvLayerStreaming", kvLayerStreaming).put("kvPath", kvPath)
        .put("kvBytes", kvBytes).put("rawLoopbackMBps", rawMbps).put("runs", jsonRuns));
  }

  /** A prompt's KV bytes over the pull stage's p50, in MB/s. */
  private static double pullMbps(long kvBytes, Run run) {
    return kvBytes / (run.pd.kvPull.percentile(50, LatencySummary.MS) * 1e3);
  }

  private static double delta(Latency engine, Latency pd, double percentile) {
    return pd.percentile(percentile, LatencySummary.MS) - engine.percentile(percentile,
        LatencySummary.MS);
  }

  private static void stage(Table table, String stage, Latency latency) {
    double ms = LatencySummary.MS;
    table.row(stage, "ms", Table.num(latency.percentile(50, ms), 3),
        Table.num(latency.percentile(90, ms), 3), Table.num(latency.percentile(99, ms), 3));
  }

  private static void row(Table table, String metric, Latency engine, Latency pd) {
    double ms = LatencySummary.MS;
    table.row(metric, "ms", Table.num(engine.percentile(50, ms), 3),
        Table.num(engine.percentile(90, ms), 3), Table.num(engine.percentile(99, ms), 3),
        Table.num(pd.percentile(50, ms), 3), Table.num(pd.percentile(90, ms), 3),
        Table.num(pd.percentile(99, ms), 3), signed(delta(engine, pd, 50)),
        signed(delta(engine, pd, 99)));
  }

  private static String signed(double value) {
    return (value >= 0 ? "+" : "") + Table.num(value, 3);
  }

  private static void totals(Table table, String setup, LatencySummary s) {
    table.row(setup, s.requests, s.outputTokens, Table.num(s.wallSeconds, 3),
        Table.num(s.throughput(), 1), s.coalescedEvents);
  }
}
