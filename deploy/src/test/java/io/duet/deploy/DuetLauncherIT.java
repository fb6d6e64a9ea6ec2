package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.deploy.LaunchedTopology.Run;
import io.duet.deploy.impl.LaunchRecord;
import io.duet.engine.Engine;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.service.ServiceTests;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The launcher for real: {@code duet.jar up} of a 1P1D topology (ports of its own, a cluster of
 * its own, aidreams260K), a completion through its proxy equal to the engine's alone, then
 * {@code status}, {@code logs} and {@code down}, after which no recorded process is left. Every
 * process the test or the launcher started is killed at the end whatever happens.
 */
class DuetLauncherIT {

  /** The ports of the topology: 3 cluster ports, the proxy's, prefill's KV and status, decode's. */
  private static final int PORTS = 7;

  private LaunchedTopology launched;
  private Path topology;
  private int proxyPort;

  @BeforeEach
  void createWorkDirectory() throws IOException {
    launched = new LaunchedTopology("DuetLauncherIT");
  }

  @AfterEach
  void killEverythingAfterTheTest() {
    launched.close();
  }

  @Test
  void upServesACompletionThenStatusLogsAndDownLeaveNoProcess() throws Exception {
    Run started = up("");
    assertEquals(0, started.exit(), started::out);
    assertTrue(started.out().contains("proxy c0 listens on http://127.0.0.1:" + proxyPort
        + "/v1"), started::out);
    LaunchRecord record = launched.record();
    assertEquals(List.of("c0", "p0", "d0"), record.started().stream()
        .map(LaunchRecord.Started::instance).toList());
    assertEquals(3, record.running().size(), "the instances outlive duet.jar: " + started.out());

    String prompt = "how are you?";
    String expected;
    try (Engine engine = Engine.open(ServiceTests.aidreams(64))) {
      expected = new OfflineGenerator(engine, 1).generate(engine.tokenizer().encode(prompt, true),
          SamplingParams.greedy(30)).text();
    }
    HttpResponse<String> completion = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
            URI.create("http://127.0.0.1:" + proxyPort + "/v1/completions"))
        .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(new JsonObject().put("model", "deepseek")
            .put("prompt", prompt).put("temperature", 0).put("max_tokens", 30).encode()))
        .build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, completion.statusCode(), completion::body);
    assertEquals(expected, new JsonObject(completion.body()).getJsonArray("choices")
        .getJsonObject(0).getString("text"), completion::body);

    Run status = duet("status", topology.toString());
    assertEquals(0, status.exit(), status::out);
    assertTrue(status.out().contains("from the cluster's registry"), status::out);
    for (String instance : List.of("c0", "p0", "d0")) {
      assertTrue(status.out().lines().anyMatch(line -> line.startsWith(instance + " ")
          && line.contains(" serving ")), () -> instance + " not serving:\n" + status.out());
    }
    assertTrue(status.out().contains("3 of 3 serving"), status::out);

    Run log = duet("logs", topology.toString(), "p0");
    assertEquals(0, log.exit(), log::out);
    assertTrue(log.out().contains("prefill p0 ready"), log::out);

    Run down = duet("down", topology.toString());
    assertEquals(0, down.exit(), down::out);
    for (LaunchRecord.Started process : record.started()) {
      assertFalse(ProcessHandle.of(process.pid()).map(ProcessHandle::isAlive).orElse(false),
          process.instance() + " (pid " + process.pid() + ") still runs after down");
      assertTrue(down.out().contains(process.instance() + " (pid " + process.pid()
          + "): stopped"), down::out);
    }
    Run again = duet("down", topology.toString());
    assertEquals(1, again.exit(), "nothing left to stop: " + again.out());
  }

  @Test
  void upReportsAnInstanceThatDiesAndStopsWhatItStarted() throws Exception {
    Run failed = up(", model: {architecture: no-such-architecture}");
    assertEquals(1, failed.exit(), failed::out);
    assertTrue(failed.out().matches("(?s).*\np0 \\(pid \\d+\\) exited with 1 before it served; "
        + "last lines of \\S+/p0\\.out:\n.*no-such-architecture.*"), failed::out);
    assertTrue(failed.out().contains("up failed: stopping what it started"), failed::out);
    LaunchRecord record = launched.record();
    assertEquals(3, record.started().size(), failed::out);
    for (LaunchRecord.Started process : record.started()) {
      assertFalse(ProcessHandle.of(process.pid()).map(ProcessHandle::isAlive).orElse(false),
          process.instance() + " (pid " + process.pid() + ") still runs after up failed");
    }
  }

  /** {@code duet.jar up} of a 1P1D whose prefill section ends with {@code prefillSettings}. */
  private Run up(String prefillSettings) throws Exception {
    Run up = launched.up("1p1d.yaml", PORTS, base -> topology(base, prefillSettings));
    topology = launched.topology();
    proxyPort = launched.base() + 3;
    return up;
  }

  /** A 1P1D on the ports from {@code base}, in a cluster of its own, with small engines. */
  private String topology(int base, String prefillSettings) {
    return launched.smallCluster() + """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: %d,
               proxy: {port: %d, http-instances: 1}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}%s}
          d0: {role: decode, host: 127.0.0.1, cluster-port: %d,
               decode: {dp: 1, http-port: %d}}
        """.formatted(base, base + 3, base + 1, base + 4, base + 5, prefillSettings,
        base + 2, base + 6);
  }

  private Run duet(String... args) throws Exception {
    return launched.duet(args);
  }
}
