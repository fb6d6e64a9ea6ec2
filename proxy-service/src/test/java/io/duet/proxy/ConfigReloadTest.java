package io.duet.proxy;

import static io.duet.service.ServiceTests.eventually;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.ConfigFlags;
import io.duet.cluster.ConfigLoader;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.Role;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reloads of a real configuration file, loaded as the proxy loads it. */
class ConfigReloadTest {

  @TempDir
  Path dir;

  private final SimpleMeterRegistry metrics = new SimpleMeterRegistry();
  private final List<DuetConfig> applied = new CopyOnWriteArrayList<>();
  private Vertx vertx;
  private Path file;
  private ConfigFlags flags;

  @BeforeEach
  void start() throws Exception {
    vertx = Vertx.vertx();
    file = dir.resolve("proxy.yaml");
    write("proxy:\n  port: 7100\n  decode-rank-cap: 4\n");
    flags = ConfigFlags.parse("--config", file.toString());
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
  }

  private void write(String yaml) throws Exception {
    Files.writeString(file, yaml);
  }

  private Future<DuetConfig> load() {
    return ConfigLoader.load(vertx, flags, Map.of());
  }

  private ConfigReload reload(Consumer<DuetConfig> apply) throws Exception {
    DuetConfig started = await(ConfigLoader.load(vertx, Role.PROXY, flags, Map.of()));
    return new ConfigReload(vertx, this::load, started, apply, metrics);
  }

  private double reloads(String outcome) {
    return metrics.get("duet.config.reloads").tag("outcome", outcome).counter().count();
  }

  private static <T> T await(Future<T> future) throws Exception {
    return future.toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void aReloadAppliesTheRunTimeSettingsAndNamesTheOthersThatChanged() throws Exception {
    ConfigReload reload = reload(applied::add);
    write("proxy:\n  port: 7200\n  decode-rank-cap: 2\n  decode-policy: longest-first\n"
        + "  prefill-policy-params: {prefix-tokens: 16}\n");
    ConfigReload.Outcome outcome = await(reload.reload("test"));

    assertTrue(outcome.applied());
    assertEquals(List.of(new ConfigReload.Change("proxy.decode-rank-cap", "4", "2"),
        new ConfigReload.Change("proxy.prefill-policy-params", "{}", "{\"prefix-tokens\":\"16\"}"),
        new ConfigReload.Change("proxy.decode-policy", "least-load", "longest-first")),
        outcome.changes(), "in the order of the reference table");
    assertEquals(List.of("proxy.port"), outcome.restartRequired(),
        "the instance id made up at start is kept");
    assertEquals(1, applied.size());
    assertEquals(2, applied.get(0).get(Settings.PROXY_DECODE_RANK_CAP));
    assertEquals(1, reloads("applied"));

    ConfigReload.Outcome again = await(reload.reload("test"));
    assertEquals(List.of(), again.changes(), "compared with what is in force now");
    assertEquals(List.of("proxy.port"), again.restartRequired(), "still not in force");
    assertEquals(1, applied.size(), "nothing to apply");
  }

  @Test
  void anInvalidFileIsRefusedWithItsProblemsAndTheRunningSettingsStay() throws Exception {
    ConfigReload reload = reload(applied::add);
    write("proxy:\n  decode-rank-cap: 0\n  queue-size: -1\n  decode-rank-capp: 3\n");
    ConfigReload.Outcome outcome = await(reload.reload("test"));

    assertFalse(outcome.applied());
    assertEquals(3, outcome.errors().size(), outcome.errors().toString());
    assertTrue(outcome.errors().get(0).startsWith("proxy.decode-rank-capp: expected a known key "
        + "(did you mean proxy.decode-rank-cap?)"), outcome.errors().get(0));
    assertTrue(outcome.errors().contains("proxy.decode-rank-cap: expected an integer >= 1, found "
        + "'0' (file: " + file.toAbsolutePath() + ")"), outcome.errors().toString());
    assertEquals(List.of(), applied);
    assertEquals(1, reloads("refused"));

    write("proxy:\n  port: 7100\n  decode-rank-cap: 5\n");
    assertEquals(List.of(new ConfigReload.Change("proxy.decode-rank-cap", "4", "5")),
        await(reload.reload("test")).changes(), "compared with the settings that stayed");
  }

  @Test
  void aConfigurationTheRoutingRefusesChangesNothing() throws Exception {
    ConfigReload reload = reload(next -> {
      throw new IllegalArgumentException("unknown decode routing policy 'random'");
    });
    write("proxy:\n  port: 7100\n  decode-policy: random\n");
    ConfigReload.Outcome outcome = await(reload.reload("test"));
    assertEquals(List.of("unknown decode routing policy 'random'"), outcome.errors());
    assertEquals(1, reloads("refused"));
  }

  @Test
  void aMissingFileIsRefused() throws Exception {
    ConfigReload reload = reload(applied::add);
    Files.delete(file);
    ConfigReload.Outcome outcome = await(reload.reload("test"));
    assertEquals(1, outcome.errors().size());
    assertTrue(outcome.errors().get(0).contains("does not exist"), outcome.errors().get(0));
  }

  @Test
  void aChangeOfTheWatchedFileReloadsIt() throws Exception {
    ConfigReload reload = reload(applied::add);
    long watch = reload.watch(file, 50);
    write("proxy:\n  port: 7100\n  decode-rank-cap: 7\n  queue-size: 12\n");
    eventually("the change is applied", Duration.ofSeconds(10), () -> applied.size() == 1);
    vertx.cancelTimer(watch);
    assertEquals(7, applied.get(0).get(Settings.PROXY_DECODE_RANK_CAP));
    assertEquals(12, applied.get(0).get(Settings.PROXY_QUEUE_SIZE));
  }
}
