package io.duet.bench;

import io.duet.bench.impl.LatencySummary;
import io.duet.bench.impl.Polling;
import io.duet.bench.impl.Progress;
import io.duet.bench.impl.StatusPages;
import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.net.URI;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * How long a new instance takes to get work: polls its status endpoint until {@code /health}
 * answers (ready, as the launcher and the membership test define it), then its
 * {@code /metrics} until its work counter moves (by default a prefill instance's prompts).
 * Start it before or after this command, while requests flow ({@code http-load}).
 */
@Command(name = "join-lag", mixinStandardHelpOptions = true,
    description = "Time from a joining instance being ready (GET /health answers) to its first "
        + "piece of work (a counter on its /metrics), on a running topology under load.")
final class JoinLagCommand extends BenchCommand {

  @Parameters(index = "0", paramLabel = "STATUS_URL",
      description = "the joining instance's status endpoint, such as http://127.0.0.1:8101")
  URI status;

  @Option(names = "--counter", description = "the counter that counts its work "
      + "(default: ${DEFAULT-VALUE})")
  String counter = "duet_prefill_prompts_total";

  @Option(names = "--poll-millis", description = "pause between two polls "
      + "(default: ${DEFAULT-VALUE})")
  int pollMillis = 2;

  @Option(names = "--timeout", paramLabel = "SECONDS", description = "how long to wait for "
      + "each of ready and work (default: ${DEFAULT-VALUE})")
  int timeoutSeconds = 180;

  @Override
  public Integer call() throws Exception {
    requireNotNegative(pollMillis, "--poll-millis");
    requirePositive(timeoutSeconds, "--timeout");
    StatusPages pages = new StatusPages();
    Progress progress = progress(2);
    long start = System.nanoTime();
    progress.phase("waiting for " + status.resolve("/health") + " to answer");
    long ready = await(() -> pages.tryGet(status.resolve("/health"))
        .map(answer -> answer.status() == 200).orElse(false), "become ready");
    progress.phase("waiting for " + counter + " to move");
    long worked = await(() -> pages.metric(status.resolve("/metrics"), counter, Map.of()) >= 1,
        "get work (" + counter + "): are requests flowing (http-load)?");
    progress.done();
    double readyMs = (ready - start) / LatencySummary.MS;
    double lagMs = (worked - ready) / LatencySummary.MS;
    PrintWriter out = out();
    out.printf("join-lag: %s%n", status);
    out.println(machine());
    out.printf(Locale.ROOT, "ready %.1f ms after the command started; first %s %.1f ms after "
        + "it was ready%n", readyMs, counter, lagMs);
    out.flush();
    writeJson(new JsonObject().put("command", "join-lag").put("machine", machineJson())
        .put("status", status.toString()).put("counter", counter).put("readyMs", readyMs)
        .put("readyToWorkMs", lagMs));
    return 0;
  }

  /** Polls until {@code check} is seen; when it was first seen. */
  private long await(Polling.Check check, String what) throws Exception {
    return Polling.until(check, pollMillis,
        System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds),
        status + " did not " + what + " within " + timeoutSeconds + " s").nanos();
  }
}
