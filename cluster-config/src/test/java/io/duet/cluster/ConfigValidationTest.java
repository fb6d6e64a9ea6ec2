package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.InvalidConfigException.Problem;
import io.vertx.core.Vertx;
import io.vertx.junit5.VertxExtension;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** The whole merged configuration is checked against the declarations, all problems at once. */
@ExtendWith(VertxExtension.class)
class ConfigValidationTest {

  @TempDir
  Path dir;

  private static List<Problem> problems(Throwable failure) {
    return assertInstanceOf(InvalidConfigException.class, failure, failure.toString()).problems();
  }

  @Test
  void unknownKeysNameTheNearestDeclaredKey(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "typo.yaml", "decode:\n  max-num-seq: 64\n");
    List<Problem> problems = problems(Configs.failure(vertx,
        ConfigFlags.parse("--config", file.toString(), "--set", "proxy.prot=7001"), Map.of()));
    assertEquals(List.of(
        new Problem("decode.max-num-seq", "a known key (did you mean decode.max-num-seqs?)", "'64'",
            "file: " + file.toAbsolutePath()),
        new Problem("proxy.prot", "a known key (did you mean proxy.port?)", "'7001'",
            "flag: --set proxy.prot")), problems);
  }

  @Test
  void everyProblemIsReportedAtOnceWithItsSource(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "bad.yaml", """
        prefill:
          lease-seconds: soon
        cluster:
          members: "p0, p1:99999"
        """);
    Map<String, String> env = Map.of("DUET_CLUSTER_PORT", "57o1");
    ConfigFlags flags = ConfigFlags.parse("--config", file.toString(), "--port=70000",
        "--set", "model.weights=copied", "--set", "decode.threads=all");
    Throwable failure = Configs.failure(vertx, flags, env);
    String source = "file: " + file.toAbsolutePath();
    assertEquals(List.of(
        new Problem("cluster.port", "an integer in 1..65535", "'57o1'", "env: DUET_CLUSTER_PORT"),
        new Problem("cluster.members", "a list of host or host:port (a YAML list or one "
            + "comma-separated string)", "'p0, p1:99999'", source),
        new Problem("model.weights", "one of mapped, huge-pages", "'copied'",
            "flag: --set model.weights"),
        new Problem("proxy.port", "an integer in 0..65535", "'70000'", "flag: --port"),
        new Problem("prefill.lease-seconds", "an integer >= 1", "'soon'", source),
        new Problem("decode.threads", "an integer >= 0", "'all'",
            "flag: --set decode.threads")), problems(failure));
    assertTrue(failure.getMessage().startsWith("invalid configuration, 6 problems:\n  "
        + "cluster.port: expected an integer in 1..65535, found '57o1' (env: DUET_CLUSTER_PORT)\n"),
        failure.getMessage());
  }

  @Test
  void conditionsBetweenSettingsNameBothKeys(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "timeouts.yaml", "cluster:\n  heartbeat-timeout-millis: 500\n");
    assertEquals(List.of(new Problem("cluster.heartbeat-timeout-millis",
            "a value greater than cluster.heartbeat-millis", "'500'",
            "file: " + file.toAbsolutePath())),
        problems(Configs.failure(vertx, ConfigFlags.parse("--config", file.toString()), Map.of())));
    assertEquals(400, Configs.load(vertx, ConfigFlags.parse("--config", file.toString(),
        "--set", "cluster.heartbeat-millis=100", "--set", "cluster.heartbeat-timeout-millis=400"),
        Map.of()).get(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS));
  }

  @Test
  void mapEntriesAreNotCheckedButTheMapIs(Vertx vertx) throws Exception {
    Path file = Configs.yaml(dir, "hazelcast.yaml", """
        cluster:
          hazelcast-properties:
            hazelcast.anything.goes: 1
            nested: {deeper: yes}
        """);
    DuetConfig config = Configs.load(vertx, ConfigFlags.parse("--config", file.toString()),
        Map.of());
    assertEquals(Map.of("hazelcast.anything.goes", "1", "nested.deeper", "true"),
        config.get(Settings.CLUSTER_HAZELCAST_PROPERTIES));

    List<Problem> problems = problems(Configs.failure(vertx, ConfigFlags.parse(
        "--set", "cluster.hazelcast-properties=5", "--set", "proxy.port.nested=1"), Map.of()));
    assertEquals(List.of("cluster.hazelcast-properties", "proxy.port"),
        problems.stream().map(Problem::key).toList(),
        "a value nested under a setting is that setting's problem, not an unknown key");
    assertEquals("a map of names to values", problems.get(0).expected());
    assertEquals("'{\"nested\":\"1\"}'", problems.get(1).found());
  }

  @Test
  void problemsNeverPrintSecrets(Vertx vertx) throws Exception {
    Throwable failure = Configs.failure(vertx, ConfigFlags.parse("--set", "hub.password=hunter2",
        "--set", "decode.max-num-seqs=0"), Map.of("DUET_API_KEY", "sk-secret"));
    assertFalse(failure.getMessage().contains("hunter2"), failure.getMessage());
    assertTrue(failure.getMessage().contains("hub.password: expected a known key"),
        failure.getMessage());
    assertTrue(failure.getMessage().contains("found '****'"), failure.getMessage());
  }

  @Test
  void valuesInCodeAreCheckedToo() {
    InvalidConfigException e = assertThrows(
        InvalidConfigException.class, () -> DuetConfig.defaults().with(Settings.PROXY_PORT, -1));
    assertEquals(List.of(new Problem("proxy.port", "an integer in 0..65535", "'-1'", "code")),
        e.problems());
  }
}
