package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.ConfigLoader;
import io.duet.cluster.Settings;
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
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
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

  private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(240);
  private static final int UP_TIMEOUT_SECONDS = 180;
  /** The ports of the topology: 3 cluster ports, the proxy's, prefill's KV and status, decode's. */
  private static final int PORTS = 7;
  /** Blocks of ports tried when one is in use (up refuses a topology whose ports are). */
  private static final int PORT_ATTEMPTS = 5;

  /** A finished run of duet.jar. */
  private record Run(int exit, String out) {
  }

  private final List<Process> commands = new ArrayList<>();
  /** Kills what {@link #killEverything} would, should this JVM be stopped before it runs. */
  private final Thread killOnExit = new Thread(this::killEverything, "launcher-it-kill");
  private final Path model = ServiceTests.shared("aidreams260K.bin");
  private final Path tokenizer = ServiceTests.shared("aidreams260K.tok512.bin");
  private Path work;
  private Path topology;
  private Path logs;
  private int proxyPort;

  @BeforeEach
  void createWorkDirectory() throws IOException {
    work = Files.createTempDirectory(Path.of("target"), "launcher-it-").toAbsolutePath();
    logs = work.resolve("logs");
    Runtime.getRuntime().addShutdownHook(killOnExit);
  }

  @AfterEach
  void killEverythingAfterTheTest() {
    killEverything();
    Runtime.getRuntime().removeShutdownHook(killOnExit);
  }

  /** Kills every duet.jar run and every instance it recorded; safe to call twice. */
  private void killEverything() {
    commands.forEach(Process::destroyForcibly);
    LaunchRecord.read(logs.resolve("launch.json")).ifPresent(record -> record.running()
        .forEach(process -> process.process().ifPresent(ProcessHandle::destroyForcibly)));
  }

  @Test
  void upServesACompletionThenStatusLogsAndDownLeaveNoProcess() throws Exception {
    Run started = up("");
    assertEquals(0, started.exit(), started::out);
    assertTrue(started.out().contains("proxy c0 listens on http://127.0.0.1:" + proxyPort
        + "/v1"), started::out);
    LaunchRecord record = LaunchRecord.read(logs.resolve("launch.json")).orElseThrow();
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
    LaunchRecord record = LaunchRecord.read(logs.resolve("launch.json")).orElseThrow();
    assertEquals(3, record.started().size(), failed::out);
    for (LaunchRecord.Started process : record.started()) {
      assertFalse(ProcessHandle.of(process.pid()).map(ProcessHandle::isAlive).orElse(false),
          process.instance() + " (pid " + process.pid() + ") still runs after up failed");
    }
  }

  /**
   * {@code duet.jar up} of a 1P1D whose prefill section ends with {@code prefillSettings}, on a
   * block of ports another block is tried for when one is in use.
   */
  private Run up(String prefillSettings) throws Exception {
    Run up = null;
    for (int attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
      // below Linux's ephemeral range, so that no connection opened meanwhile takes one
      int base = 20_000 + ThreadLocalRandom.current().nextInt(12_000 - PORTS);
      proxyPort = base + 3;
      topology = Files.writeString(work.resolve("1p1d.yaml"), topology(base, prefillSettings));
      up = duet("up", topology.toString(), "--timeout", String.valueOf(UP_TIMEOUT_SECONDS));
      if (up.exit() == 0 || !up.out().contains(" is in use")) {
        return up;
      }
    }
    return up;
  }

  /** A 1P1D on the ports from {@code base}, in a cluster of its own, with small engines. */
  private static String topology(int base, String prefillSettings) {
    String cluster = "duet-launcher-it-"
        + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 16);
    return """
        # Written by DuetLauncherIT.
        cluster:
          name: %s
          heartbeat-millis: 500
          heartbeat-timeout-millis: 3000
          hazelcast-properties: {hazelcast.wait.seconds.before.join: "0"}
        model: {served-name: deepseek}
        prefill: {threads: 1, kv-cache-mb: 16}
        decode: {threads: 1, kv-cache-mb: 16, max-num-seqs: 8}
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: %d,
               proxy: {port: %d, http-instances: 1}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}%s}
          d0: {role: decode, host: 127.0.0.1, cluster-port: %d,
               decode: {dp: 1, http-port: %d}}
        """.formatted(cluster, base, base + 3, base + 1, base + 4, base + 5, prefillSettings,
        base + 2, base + 6);
  }

  /** Runs {@code java -jar duet.jar ARGS} with the model and the log path in its environment. */
  private Run duet(String... args) throws Exception {
    List<String> command = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-jar", repoDir().resolve("deploy/target/duet.jar").toString()));
    command.addAll(List.of(args));
    Path output = Files.createTempFile(work, args[0] + "-", ".out");
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(output.toFile());
    // The topology and these variables are the whole configuration of the instances: no
    // variable of this machine's environment may move them elsewhere.
    builder.environment().keySet().removeIf(key -> key.equals(ConfigLoader.CONFIG_ENV)
        || Settings.all().stream().anyMatch(setting -> setting.env().equals(Optional.of(key))));
    builder.environment().put("MODEL_PATH", model.toString());
    builder.environment().put("TOKENIZER_PATH", tokenizer.toString());
    builder.environment().put("LOG_PATH", logs.toString());
    Process process = builder.start();
    commands.add(process);
    if (!process.waitFor(COMMAND_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
      process.destroyForcibly();
      throw new AssertionError("duet.jar " + String.join(" ", args) + " did not end within "
          + COMMAND_TIMEOUT.toSeconds() + " s:\n" + Files.readString(output));
    }
    return new Run(process.exitValue(), Files.readString(output));
  }

  /** The repository root, where the modules' target/ folders are. */
  private static Path repoDir() {
    Path repo = Path.of(System.getProperty("duet.jars.dir", ".."));
    Path jar = repo.resolve("deploy/target/duet.jar");
    assertTrue(Files.isRegularFile(jar), "missing " + jar + ": run the 'package' phase first");
    return repo.toAbsolutePath().normalize();
  }
}
