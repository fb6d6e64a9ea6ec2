package io.duet.bench;

import io.duet.bench.impl.Arrivals;
import io.duet.bench.impl.Futures;
import io.duet.bench.impl.Latency;
import io.duet.bench.impl.LatencySummary;
import io.duet.bench.impl.OpenLoopClient;
import io.duet.bench.impl.OpenLoopClient.Outcome;
import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Prompts;
import io.duet.bench.impl.RequestTiming;
import io.duet.bench.impl.Table;
import io.duet.bench.impl.TokenizerFile;
import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IntSummaryStatistics;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * An open-loop load against any OpenAI-compatible server's streamed {@code /v1/completions}:
 * requests at a fixed rate (evenly spaced or Poisson, from a seed) for a count or a duration,
 * each timed from when it was due. Reports TTFT, ITL, TPOT and E2E (p50/p90/p99), request and
 * output-token throughput, and the failures by kind.
 */
@Command(name = "http-load", mixinStandardHelpOptions = true,
    description = "Open-loop load over HTTP against an OpenAI-compatible /v1/completions "
        + "(streamed): TTFT, ITL, TPOT, E2E, throughput, errors.")
final class HttpLoadCommand extends BenchCommand {

  @Option(names = "--url", description = "the server (default: ${DEFAULT-VALUE})")
  URI url = URI.create("http://127.0.0.1:7000");

  @Option(names = "--model", description = "the model to ask for (default: the first that "
      + "GET /v1/models lists)")
  String model;

  @Option(names = "--rate", required = true, description = "requests per second")
  double rate;

  @Option(names = "--arrivals", description = "constant (evenly spaced) or poisson "
      + "(exponential gaps) (default: poisson)")
  Arrivals.Shape arrivals = Arrivals.Shape.POISSON;

  @Option(names = "--seed", description = "seeds the arrivals and the prompts "
      + "(default: ${DEFAULT-VALUE})")
  long seed = 1;

  @ArgGroup(exclusive = true)
  Length length = new Length();

  static final class Length {
    @Option(names = "--requests", description = "measured requests (default: 100)")
    Integer requests;

    @Option(names = "--duration", paramLabel = "SECONDS",
        description = "send for this long instead of a count")
    Double durationSeconds;
  }

  @ArgGroup(exclusive = true, multiplicity = "1")
  PromptSource prompts;

  static final class PromptSource {
    @Option(names = {"-z", "--tokenizer"}, description = "llama2.c tokenizer.bin the "
        + "generated prompts are measured with (the server's tokenizer)")
    Path tokenizer;

    @Option(names = "--prompts", paramLabel = "FILE", description = "prompts, one a line, "
        + "used in order and again from the top")
    Path file;
  }

  @Option(names = "--prompt-tokens", description = "length of generated prompts, BOS "
      + "included (default: ${DEFAULT-VALUE})")
  int promptTokens = 128;

  @Option(names = "--max-tokens", description = "max_tokens of every request "
      + "(default: ${DEFAULT-VALUE})")
  int maxTokens = 64;

  @Option(names = "--ignore-eos", negatable = true, fallbackValue = "true",
      description = "ask for exactly --max-tokens tokens (ignore_eos; default: ${DEFAULT-VALUE})")
  boolean ignoreEos = true;

  @Option(names = "--max-concurrency", description = "requests in flight at most; later ones "
      + "wait for a slot, their clock running (default: ${DEFAULT-VALUE})")
  int maxConcurrency = 64;

  @Option(names = "--warmup", description = "requests at the same rate before the measured "
      + "ones, not counted (default: ${DEFAULT-VALUE})")
  int warmup = 8;

  @Option(names = "--timeout", paramLabel = "SECONDS", description = "a request fails when "
      + "nothing arrives for this long (default: ${DEFAULT-VALUE})")
  int timeoutSeconds = 60;

  @Override
  public Integer call() throws Exception {
    if (!(rate > 0) || Double.isInfinite(rate)) {
      throw badParameter("--rate must be a positive number, was " + rate);
    }
    if (length.durationSeconds != null && !(length.durationSeconds > 0)) {
      throw badParameter("--duration must be positive, was " + length.durationSeconds);
    }
    int requested = length.requests == null ? 100 : length.requests;
    requirePositive(requested, "--requests");
    requirePositive(promptTokens, "--prompt-tokens");
    requirePositive(maxTokens, "--max-tokens");
    requirePositive(maxConcurrency, "--max-concurrency");
    requirePositive(timeoutSeconds, "--timeout");
    requireNotNegative(warmup, "--warmup");
    if (url.getScheme() == null || url.getHost() == null) {
      throw badParameter("--url must be an absolute http URL, was " + url);
    }
    long[] measuredArrivals = length.durationSeconds != null
        ? Arrivals.within(arrivals, rate, seed, length.durationSeconds)
        : Arrivals.first(arrivals, rate, seed, requested);
    Progress progress = progress(warmup > 0 ? 4 : 3);
    progress.phase("building prompts");
    List<String> texts = texts(warmup + measuredArrivals.length);
    try (OpenLoopClient client = new OpenLoopClient(url, maxConcurrency,
        TimeUnit.SECONDS.toMillis(timeoutSeconds))) {
      progress.phase("asking " + url + " for its model");
      String served = model != null ? model : Futures.await(client.firstModel(), timeoutSeconds);
      List<JsonObject> bodies = new ArrayList<>();
      for (String text : texts) {
        bodies.add(body(served, text));
      }
      if (warmup > 0) {
        progress.phase("warm-up, " + warmup + " requests");
        List<Outcome> warm = run(client, bodies.subList(0, warmup),
            Arrivals.first(arrivals, rate, seed + 1, warmup), progress);
        long failed = warm.stream().filter(o -> !o.ok()).count();
        if (failed == warmup) {
          throw new IllegalStateException("every warm-up request failed, the first with "
              + warm.get(0).error() + "; is " + url + " serving?");
        }
      }
      progress.phase("measuring, " + measuredArrivals.length + " requests at " + rate + "/s");
      long start = System.nanoTime();
      List<Outcome> outcomes = run(client, bodies.subList(warmup, bodies.size()),
          measuredArrivals, progress);
      progress.done();
      report(served, outcomes, start, measuredArrivals);
    }
    return 0;
  }

  private List<String> texts(int count) throws Exception {
    if (prompts.file != null) {
      List<String> lines = Files.readAllLines(prompts.file, StandardCharsets.UTF_8).stream()
          .filter(line -> !line.isBlank()).toList();
      if (lines.isEmpty()) {
        throw badParameter("--prompts " + prompts.file + " holds no prompt");
      }
      List<String> texts = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        texts.add(lines.get(i % lines.size()));
      }
      return texts;
    }
    return Prompts.texts(TokenizerFile.load(prompts.tokenizer), seed, count, promptTokens);
  }

  private JsonObject body(String served, String prompt) {
    return new JsonObject().put("model", served).put("prompt", prompt)
        .put("max_tokens", maxTokens).put("temperature", 0).put("ignore_eos", ignoreEos)
        .put("stream", true).put("stream_options", new JsonObject().put("include_usage", true)
            .put("continuous_usage_stats", true));
  }

  /**
   * Runs one open-loop batch, drawing its progress bar until it ends. It does end: every
   * request fails once nothing arrives for --timeout.
   */
  private static List<Outcome> run(OpenLoopClient client, List<JsonObject> bodies,
      long[] offsets, Progress progress) throws Exception {
    CompletableFuture<List<Outcome>> run =
        client.run(bodies, offsets).toCompletionStage().toCompletableFuture();
    while (true) {
      progress.detail(bar(client.progress(), bodies.size()));
      try {
        List<Outcome> outcomes = run.get(250, TimeUnit.MILLISECONDS);
        progress.detail(bar(client.progress(), bodies.size()));
        return outcomes;
      } catch (TimeoutException stillRunning) {
        // the next frame of the bar
      }
    }
  }

  private static String bar(OpenLoopClient.Progress p, int total) {
    int width = 30;
    int filled = total == 0 ? width : (int) ((long) p.finished() * width / total);
    return "[" + "#".repeat(filled) + ".".repeat(width - filled) + "] " + p.finished() + "/"
        + total + " done, " + p.inFlight() + " in flight, " + (p.due() - p.finished()
        - p.inFlight()) + " waiting, " + p.failed() + " failed";
  }

  private void report(String served, List<Outcome> outcomes, long start, long[] offsets)
      throws Exception {
    List<RequestTiming> completed = new ArrayList<>();
    Map<String, Integer> errors = new TreeMap<>();
    Latency wait = new Latency();
    IntSummaryStatistics promptLengths = new IntSummaryStatistics();
    int maxInFlight = 0;
    for (Outcome outcome : outcomes) {
      wait.recordNanos(outcome.waitNanos());
      if (outcome.ok()) {
        completed.add(outcome.timing());
        if (outcome.promptTokens() >= 0) {
          promptLengths.accept(outcome.promptTokens());
        }
      } else {
        errors.merge(outcome.error(), 1, Integer::sum);
      }
    }
    LatencySummary summary = new LatencySummary(completed, start);
    double offeredSeconds = offsets.length < 2 ? 0 : offsets[offsets.length - 1] / 1e9;
    // With nothing completed there is no wall time to divide by.
    double requestRate = summary.wallSeconds > 0 ? completed.size() / summary.wallSeconds : 0;
    double tokenRate = summary.wallSeconds > 0 ? summary.throughput() : 0;
    PrintWriter out = out();
    out.printf("http-load: %s, model %s%n", url, served);
    out.printf(Locale.ROOT, "%d requests, %s arrivals at %.3f/s (seed %d, %.1f s of "
            + "arrivals), at most %d in flight; prompts %s; max_tokens %d, ignore_eos %s, "
            + "temperature 0; %d warm-up requests%n", outcomes.size(),
        arrivals.name().toLowerCase(Locale.ROOT), rate, seed, offeredSeconds, maxConcurrency,
        promptDescription(promptLengths), maxTokens, ignoreEos, warmup);
    out.println(machine());
    out.println();
    Table latency = new Table(2, "metric", "unit", "p50", "p90", "p99", "mean", "max");
    row(latency, "TTFT", summary.ttft);
    row(latency, "ITL", summary.itl);
    row(latency, "TPOT", summary.tpot);
    row(latency, "E2E", summary.e2e);
    latency.print(out);
    Table totals = new Table(1, "requests", "completed", "failed", "output tokens", "wall s",
        "req/s", "output tok/s", "waited for a slot");
    totals.row(outcomes.size(), completed.size(), outcomes.size() - completed.size(),
        summary.outputTokens, Table.num(summary.wallSeconds, 3), Table.num(requestRate, 3),
        Table.num(tokenRate, 1), outcomes.stream().filter(o -> o.waitNanos() > 0)
            .count());
    totals.print(out);
    if (!errors.isEmpty()) {
      Table failures = new Table(1, "failure", "requests");
      errors.forEach(failures::row);
      failures.print(out);
    }
    out.flush();
    JsonObject errorsJson = new JsonObject();
    errors.forEach(errorsJson::put);
    double ms = LatencySummary.MS;
    writeJson(new JsonObject().put("command", "http-load").put("machine", machineJson())
        .put("url", url.toString()).put("model", served).put("rate", rate)
        .put("arrivals", arrivals.name().toLowerCase(Locale.ROOT)).put("seed", seed)
        .put("maxConcurrency", maxConcurrency).put("maxTokens", maxTokens)
        .put("ignoreEos", ignoreEos).put("warmup", warmup)
        .put("promptTokensMin", promptLengths.getCount() == 0 ? null : promptLengths.getMin())
        .put("promptTokensMax", promptLengths.getCount() == 0 ? null : promptLengths.getMax())
        .put("requests", outcomes.size()).put("completed", completed.size())
        .put("failed", outcomes.size() - completed.size()).put("errors", errorsJson)
        .put("requestsPerSecond", requestRate).put("outputTokensPerSecond", tokenRate)
        .put("summary", summary.toJson())
        .put("slotWaitMs", wait.toJson(ms)));
  }

  private String promptDescription(IntSummaryStatistics lengths) {
    String source = prompts.file != null ? "from " + prompts.file
        : "of " + promptTokens + " tokens built from random vocabulary pieces";
    return lengths.getCount() == 0 ? source : source + " (" + lengths.getMin() + "-"
        + lengths.getMax() + " tokens as the server counted them)";
  }

  private static void row(Table table, String metric, Latency latency) {
    double ms = LatencySummary.MS;
    table.row(metric, "ms", Table.num(latency.percentile(50, ms), 3),
        Table.num(latency.percentile(90, ms), 3), Table.num(latency.percentile(99, ms), 3),
        Table.num(latency.mean(ms), 3), Table.num(latency.max(ms), 3));
  }
}
