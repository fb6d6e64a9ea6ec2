package io.duet.bench;

import io.duet.bench.impl.Latency;
import io.duet.bench.impl.LatencySummary;
import io.duet.bench.impl.Polling;
import io.duet.bench.impl.Progress;
import io.duet.bench.impl.StatusPages;
import io.duet.bench.impl.Table;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * How long a reload of the proxy's prefill policy takes to show in its decisions: the
 * configuration file's {@code prefill-policy} is switched from one policy to the next, the
 * proxy is told ({@code POST /admin/reload}) or left to notice the file, and its
 * {@code /metrics} are polled until the first prefill decision under the new policy. Needs
 * requests flowing (run {@code http-load} at the same time); the file is put back at the end.
 */
@Command(name = "reload-lag", mixinStandardHelpOptions = true,
    description = "Time from a prefill-policy change (POST /admin/reload or the file watch) to "
        + "the proxy's first decision under it, on a running proxy under load.")
final class ReloadLagCommand extends BenchCommand {

  private static final Pattern PREFILL_POLICY =
      Pattern.compile("(prefill-policy:\\s*)([A-Za-z0-9_.-]+)");
  /** The proxy's decisions by kind and policy. */
  static final String DECISIONS = "duet_routing_decisions_total";

  /** How a change reaches the proxy. */
  enum Via { POST, WATCH }

  @Parameters(index = "0", paramLabel = "FILE", description = "the configuration or topology "
      + "file the proxy was started with; it must name prefill-policy once")
  Path file;

  @Option(names = "--url", description = "the proxy (default: ${DEFAULT-VALUE})")
  URI url = URI.create("http://127.0.0.1:7000");

  @Option(names = "--policies", split = ",", description = "the prefill policies to switch "
      + "between, in turn (default: ${DEFAULT-VALUE})")
  List<String> policies = List.of("least-prompt-tokens", "round-robin");

  @Option(names = "--changes", description = "policy changes to time (default: ${DEFAULT-VALUE})")
  int changes = 6;

  @Option(names = "--via", description = "post: POST /admin/reload right after writing the "
      + "file; watch: wait for the proxy to notice the file (default: post)")
  Via via = Via.POST;

  @Option(names = "--api-key", description = "the proxy's API key, if it has one "
      + "(default: $DUET_API_KEY)")
  String apiKey = System.getenv("DUET_API_KEY");

  @Option(names = "--poll-millis", description = "pause between two reads of /metrics "
      + "(default: ${DEFAULT-VALUE})")
  int pollMillis = 2;

  @Option(names = "--timeout", paramLabel = "SECONDS", description = "how long a change may "
      + "take to show (default: ${DEFAULT-VALUE})")
  int timeoutSeconds = 30;

  /** One timed change. */
  private record Change(String from, String to, double replyMs, double firstDecisionMs,
      int polls) {
  }

  @Override
  public Integer call() throws Exception {
    requirePositive(changes, "--changes");
    requireNotNegative(pollMillis, "--poll-millis");
    requirePositive(timeoutSeconds, "--timeout");
    if (policies.size() < 2) {
      throw badParameter("--policies needs two policies or more to switch between");
    }
    String original = Files.readString(file, StandardCharsets.UTF_8);
    Matcher named = PREFILL_POLICY.matcher(original);
    if (!named.find() || named.find()) {
      throw badParameter(file + " must name prefill-policy exactly once, to switch it");
    }
    StatusPages pages = new StatusPages();
    Change[] timed = new Change[changes];
    Progress progress = progress(changes);
    String current = policyIn(original);
    try {
      for (int i = 0; i < changes; i++) {
        String next = policies.get((policies.indexOf(current) + 1) % policies.size());
        progress.phase(current + " -> " + next);
        timed[i] = change(pages, current, next);
        current = next;
      }
    } finally {
      if (!policyIn(Files.readString(file, StandardCharsets.UTF_8)).equals(policyIn(original))) {
        write(original);
        if (via == Via.POST) {
          pages.post(url.resolve("/admin/reload"), apiKey);
        }
      }
    }
    progress.done();
    report(List.of(timed));
    return 0;
  }

  private static String policyIn(String text) {
    Matcher m = PREFILL_POLICY.matcher(text);
    return m.find() ? m.group(2) : "";
  }

  /** Switches the file to {@code to} and waits for the first decision under it. */
  private Change change(StatusPages pages, String from, String to) throws Exception {
    URI metrics = url.resolve("/metrics");
    Map<String, String> labels = Map.of("kind", "prefill", "policy", to);
    double before = pages.metric(metrics, DECISIONS, labels);
    String text = Files.readString(file, StandardCharsets.UTF_8);
    write(PREFILL_POLICY.matcher(text).replaceFirst("$1" + Matcher.quoteReplacement(to)));
    long written = System.nanoTime();
    double replyMs = Double.NaN;
    if (via == Via.POST) {
      StatusPages.Answer answer = pages.post(url.resolve("/admin/reload"), apiKey);
      replyMs = (System.nanoTime() - written) / LatencySummary.MS;
      if (answer.status() != 200) {
        throw new IllegalStateException("POST /admin/reload answered " + answer.status() + ": "
            + answer.body());
      }
    }
    Polling.Seen seen = Polling.until(() -> pages.metric(metrics, DECISIONS, labels) > before,
        pollMillis, written + TimeUnit.SECONDS.toNanos(timeoutSeconds), "no prefill decision "
            + "under " + to + " within " + timeoutSeconds + " s of the change: are requests "
            + "flowing (http-load)?");
    return new Change(from, to, replyMs, (seen.nanos() - written) / LatencySummary.MS,
        seen.polls());
  }

  /** Replaces the file in one step, so that the proxy never reads half of it. */
  private void write(String text) throws Exception {
    Path temp = file.resolveSibling(file.getFileName() + ".reload-lag");
    Files.writeString(temp, text, StandardCharsets.UTF_8);
    Files.move(temp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  private void report(List<Change> timed) throws Exception {
    PrintWriter out = out();
    out.printf("reload-lag: %s, %s, %d prefill-policy changes via %s%n", url, file,
        timed.size(), via == Via.POST ? "POST /admin/reload" : "the proxy's file watch");
    out.println(machine());
    out.println();
    Table table = new Table(2, "from", "to", "reply ms", "first decision ms", "polls");
    Latency first = new Latency();
    JsonArray rows = new JsonArray();
    for (Change c : timed) {
      table.row(c.from(), c.to(), Double.isNaN(c.replyMs()) ? "-" : Table.num(c.replyMs(), 1),
          Table.num(c.firstDecisionMs(), 1), c.polls());
      first.recordNanos(c.firstDecisionMs() * LatencySummary.MS);
      rows.add(new JsonObject().put("from", c.from()).put("to", c.to())
          .put("replyMs", Double.isNaN(c.replyMs()) ? null : c.replyMs())
          .put("firstDecisionMs", c.firstDecisionMs()).put("polls", c.polls()));
    }
    table.print(out);
    out.printf(Locale.ROOT, "file written to first decision under the new policy: "
            + "p50 %.1f ms, max %.1f ms%n", first.percentile(50, LatencySummary.MS),
        first.max(LatencySummary.MS));
    out.flush();
    writeJson(new JsonObject().put("command", "reload-lag").put("machine", machineJson())
        .put("url", url.toString()).put("via", via.name().toLowerCase(Locale.ROOT)).put("changes", rows)
        .put("firstDecisionMs", first.toJson(LatencySummary.MS)));
  }
}
