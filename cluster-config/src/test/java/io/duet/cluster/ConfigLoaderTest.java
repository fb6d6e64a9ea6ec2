package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.Role;
import io.duet.engine.EngineOptions;
import io.duet.engine.WeightStorage;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import io.vertx.junit5.VertxExtension;
import io.vertx.junit5.VertxTestContext;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

@ExtendWith(VertxExtension.class)
class ConfigLoaderTest {

  private static final String FILE_SECRET = "file-secret-0xC0FFEE";
  private static final String ENV_SECRET = "env-secret-0xBADF00D";

  @TempDir
  Path dir;

  private Path yaml(String name, String text) throws IOException {
    Path file = dir.resolve(name);
    Files.writeString(file, text);
    return file;
  }

  private Path topology() throws IOException {
    return yaml("topology.yaml", """
        cluster:
          name: file-cluster
          port: 6000
        model:
          path: /file/model.bin
        proxy:
          port: 7100
        api-key: %s
        """.formatted(FILE_SECRET));
  }

  @Test
  void eachLayerOverridesTheOneBelow(Vertx vertx, VertxTestContext ctx) throws IOException {
    String file = topology().toString();
    Map<String, String> env = Map.of("DUET_CLUSTER_NAME", "env-cluster", "DUET_PROXY_PORT", "7200",
        "MODEL_PATH", "/env/model.bin", "TOKENIZER_PATH", "/env/tokenizer.bin",
        "DUET_API_KEY", ENV_SECRET, "DUET_CLUSTER_MEMBERS", "10.0.0.1:5701, p1 ,");
    ConfigFlags flags = ConfigFlags.parse("--config", file, "--cluster-name", "flag-cluster",
        "--model", "/flag/model.bin", "--set", "decode.max-num-seqs=64", "--set", "proxy.port=1",
        "--set", "cluster.hazelcast-properties.hazelcast.max.no.heartbeat.seconds=15");

    Future<DuetConfig> defaultsOnly = ConfigLoader.load(vertx, new ConfigFlags(), Map.of());
    Future<DuetConfig> withFile = ConfigLoader.load(vertx, ConfigFlags.parse("--config", file), Map.of());
    Future<DuetConfig> withEnv = ConfigLoader.load(vertx, ConfigFlags.parse("--config", file), env);
    Future<DuetConfig> withFlags = ConfigLoader.load(vertx, flags, env);

    Future.all(defaultsOnly, withFile, withEnv, withFlags).onComplete(ctx.succeeding(all -> ctx.verify(() -> {
      DuetConfig d = defaultsOnly.result();
      DuetConfig f = withFile.result();
      DuetConfig e = withEnv.result();
      DuetConfig c = withFlags.result();

      // the same key at every level: each level wins over the ones below
      assertEquals("duet", d.get(Settings.CLUSTER_NAME));
      assertEquals("file-cluster", f.get(Settings.CLUSTER_NAME));
      assertEquals("env-cluster", e.get(Settings.CLUSTER_NAME));
      assertEquals("flag-cluster", c.get(Settings.CLUSTER_NAME));
      assertEquals(List.of("default", "file", "env", "flag"), List.of(d.source("cluster.name"),
          f.source("cluster.name"), e.source("cluster.name"), c.source("cluster.name")));

      assertEquals(Optional.empty(), d.get(Settings.MODEL_PATH));
      assertEquals(Optional.of(Path.of("/file/model.bin")), f.get(Settings.MODEL_PATH));
      assertEquals(Optional.of(Path.of("/env/model.bin")), e.get(Settings.MODEL_PATH));
      assertEquals(Optional.of(Path.of("/flag/model.bin")), c.get(Settings.MODEL_PATH));

      assertEquals(7000, d.get(Settings.PROXY_PORT));
      assertEquals(7100, f.get(Settings.PROXY_PORT));
      assertEquals(7200, e.get(Settings.PROXY_PORT));
      assertEquals(1, c.get(Settings.PROXY_PORT), "--set is a flag, above the environment");
      assertEquals("flag", c.source("proxy.port"));

      // keys set only by lower layers keep their values
      assertEquals(6000, c.get(Settings.CLUSTER_PORT));
      assertEquals("file", c.source("cluster.port"));
      assertEquals(30, c.get(Settings.PREFILL_LEASE_SECONDS));
      assertEquals("default", c.source("prefill.lease-seconds"));
      assertEquals(64, c.get(Settings.DECODE_MAX_NUM_SEQS));
      assertEquals(List.of("10.0.0.1:5701", "p1"), c.get(Settings.CLUSTER_MEMBERS));
      assertEquals(Optional.of(ENV_SECRET), c.get(Settings.API_KEY));
      assertEquals(Map.of("hazelcast.max.no.heartbeat.seconds", "15"),
          c.get(Settings.CLUSTER_HAZELCAST_PROPERTIES));
      assertEquals(Optional.of("model"), c.get(Settings.MODEL_SERVED_NAME));
      assertEquals(Optional.of(Path.of("/env/tokenizer.bin")), c.get(Settings.MODEL_TOKENIZER));

      String described = c.describe();
      assertFalse(described.contains(ENV_SECRET), described);
      assertFalse(described.contains(FILE_SECRET), described);
      assertTrue(described.contains("api-key"), described);
      assertTrue(described.matches("(?s).*api-key\\s+= \\*\\*\\*\\* +\\(env: DUET_API_KEY\\).*"), described);
      assertTrue(described.contains("model.tokenizer") && described.contains("/env/tokenizer.bin"),
          described);
      assertTrue(described.matches("(?s).*cluster\\.name\\s+= flag-cluster +\\(flag: --cluster-name\\).*"),
          described);
      assertTrue(described.matches("(?s).*cluster\\.port\\s+= 6000 +\\(file: .*topology\\.yaml\\).*"),
          described);
      assertTrue(described.matches("(?s).*proxy\\.port\\s+= 1 +\\(flag: --set proxy\\.port\\).*"),
          described);
      assertTrue(described.matches("(?s).*prefill\\.max-batch-tokens\\s+= 2048 +\\(default\\).*"),
          described);
      List<String> keys = described.lines().map(line -> line.substring(0, line.indexOf(" ="))
          .trim()).toList();
      assertEquals(keys.stream().sorted().toList(), keys, "sorted by key");
      assertFalse(c.toString().contains(ENV_SECRET));
      assertEquals(ENV_SECRET, c.toJson().getString("api-key"), "toJson keeps the real value");
      ctx.completeNow();
    })));
  }

  @Test
  void namedFlagsWinOverSet() {
    ConfigFlags flags = ConfigFlags.parse("--set", "proxy.port=7002", "--port", "7001",
        "--set", "model.served-name=null", "--set", "proxy.embedded=false",
        "--set", "model.chat-template=a=b");
    JsonObject overlay = flags.toJson();
    assertEquals(7001, overlay.getJsonObject("proxy").getInteger("port"));
    assertTrue(overlay.getJsonObject("model").containsKey("served-name"));
    assertEquals(null, overlay.getJsonObject("model").getValue("served-name"));
    assertEquals(false, overlay.getJsonObject("proxy").getBoolean("embedded"),
        "a declared key's value is read by its type");
    assertEquals("a=b", overlay.getJsonObject("model").getString("chat-template"));
    assertThrows(CommandLine.ParameterException.class, () -> ConfigFlags.parse("--set", "novalue"));
  }

  @Test
  void configFileFromEnvironment(Vertx vertx, VertxTestContext ctx) throws IOException {
    String file = topology().toString();
    ConfigLoader.load(vertx, Role.PREFILL, new ConfigFlags(), Map.of("DUET_CONFIG", file))
        .onComplete(ctx.succeeding(config -> ctx.verify(() -> {
          assertEquals("file-cluster", config.get(Settings.CLUSTER_NAME));
          String id = config.get(Settings.INSTANCE_ID);
          assertTrue(id.startsWith("prefill-"), id);
          assertTrue(id.matches("prefill-[a-z0-9-]+-[0-9a-f]{6}"), id);
          assertEquals("generated", config.source("instance.id"));
          ctx.completeNow();
        })));
  }

  @Test
  void missingExplicitConfigFileNamesThePath(Vertx vertx, VertxTestContext ctx) {
    Path missing = dir.resolve("no-such-topology.yaml");
    ConfigLoader.load(vertx, ConfigFlags.parse("--config", missing.toString()), Map.of())
        .onComplete(ctx.failing(error -> ctx.verify(() -> {
          assertTrue(error instanceof IllegalArgumentException, error.toString());
          assertTrue(error.getMessage().contains(missing.toAbsolutePath().toString()), error.getMessage());
          assertTrue(error.getMessage().contains("--config"), error.getMessage());
          ctx.completeNow();
        })));
  }

  @Test
  void missingConfigFileFromEnvironmentNamesThePath(Vertx vertx, VertxTestContext ctx) {
    Path missing = dir.resolve("gone.yaml");
    ConfigLoader.load(vertx, new ConfigFlags(), Map.of("DUET_CONFIG", missing.toString()))
        .onComplete(ctx.failing(error -> ctx.verify(() -> {
          assertTrue(error.getMessage().contains(missing.toString()), error.getMessage());
          assertTrue(error.getMessage().contains("DUET_CONFIG"), error.getMessage());
          ctx.completeNow();
        })));
  }

  @Test
  void invalidValuesFailNamingKeyAndSource(Vertx vertx, VertxTestContext ctx) throws IOException {
    Path file = yaml("bad.yaml", "prefill:\n  lease-seconds: soon\n");
    Future<DuetConfig> badFile = ConfigLoader.load(vertx,
        ConfigFlags.parse("--config", file.toString()), Map.of());
    Future<DuetConfig> badEnv = ConfigLoader.load(vertx, new ConfigFlags(),
        Map.of("DUET_CLUSTER_PORT", "57o1"));
    Future<DuetConfig> badFlag = ConfigLoader.load(vertx,
        ConfigFlags.parse("--set", "proxy.port=70000"), Map.of());
    Future<DuetConfig> badTimeout = ConfigLoader.load(vertx,
        ConfigFlags.parse("--set", "cluster.heartbeat-timeout-millis=500"), Map.of());
    Future.join(badFile, badEnv, badFlag, badTimeout).onComplete(done -> ctx.verify(() -> {
      assertTrue(badFile.failed() && badEnv.failed() && badFlag.failed() && badTimeout.failed());
      assertTrue(badFile.cause().getMessage().contains("prefill.lease-seconds"), badFile.cause().getMessage());
      assertTrue(badFile.cause().getMessage().contains("bad.yaml"), badFile.cause().getMessage());
      assertTrue(badEnv.cause().getMessage().contains("DUET_CLUSTER_PORT"), badEnv.cause().getMessage());
      assertTrue(badFlag.cause().getMessage().contains("proxy.port"), badFlag.cause().getMessage());
      assertTrue(badFlag.cause().getMessage().contains("--set proxy.port"), badFlag.cause().getMessage());
      assertTrue(badTimeout.cause().getMessage().contains("heartbeat-timeout-millis"));
      ctx.completeNow();
    }));
  }

  @Test
  void emptyAndCommentOnlyFilesAreEmptyLayers(Vertx vertx, VertxTestContext ctx) throws IOException {
    Path empty = yaml("empty.yaml", "");
    Path comments = yaml("comments.yaml", "# nothing set here\n");
    Future<DuetConfig> a = ConfigLoader.load(vertx, ConfigFlags.parse("--config", empty.toString()), Map.of());
    Future<DuetConfig> b = ConfigLoader.load(vertx, ConfigFlags.parse("--config", comments.toString()), Map.of());
    Future.all(a, b).onComplete(ctx.succeeding(all -> ctx.verify(() -> {
      assertEquals(DuetConfig.defaults().toJson(), a.result().toJson());
      assertEquals(DuetConfig.defaults().toJson(), b.result().toJson());
      ctx.completeNow();
    })));
  }

  @Test
  void loaderDefaultsEqualTheSynchronousDefaults(Vertx vertx, VertxTestContext ctx) {
    ConfigLoader.load(vertx, new ConfigFlags(), Map.of()).onComplete(ctx.succeeding(config -> ctx.verify(() -> {
      assertEquals(DuetConfig.defaults().toJson(), config.toJson());
      DuetConfig d = DuetConfig.defaults();
      int cores = Runtime.getRuntime().availableProcessors();
      assertEquals("duet", d.get(Settings.CLUSTER_NAME));
      assertEquals("127.0.0.1", d.get(Settings.CLUSTER_HOST));
      assertEquals(5701, d.get(Settings.CLUSTER_PORT));
      assertEquals(100, d.get(Settings.CLUSTER_PORT_COUNT));
      assertEquals(List.of("127.0.0.1"), d.get(Settings.CLUSTER_MEMBERS));
      assertEquals(500, d.get(Settings.CLUSTER_HEARTBEAT_MILLIS));
      assertEquals(2000, d.get(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS));
      assertEquals(Map.of(), d.get(Settings.CLUSTER_HAZELCAST_PROPERTIES));
      assertEquals(Optional.empty(), d.get(Settings.MODEL_CHAT_TEMPLATE));
      assertEquals(WeightStorage.MAPPED, d.get(Settings.MODEL_WEIGHTS));
      assertEquals(30, d.get(Settings.INSTANCE_DRAIN_TIMEOUT_SECONDS));
      assertEquals(1, d.get(Settings.INSTANCE_EVENT_LOOPS));
      assertEquals("127.0.0.1", d.get(Settings.PROXY_HOST));
      assertEquals(7000, d.get(Settings.PROXY_PORT));
      assertEquals(1, d.get(Settings.PROXY_HTTP_INSTANCES));
      assertEquals(600, d.get(Settings.PROXY_REQUEST_TIMEOUT_SECONDS));
      assertEquals(32, d.get(Settings.PROXY_STREAM_CREDITS));
      assertEquals(true, d.get(Settings.PROXY_EMBEDDED));
      assertEquals(1 << 20, d.get(Settings.PROXY_MAX_BODY_BYTES));
      assertEquals(16, d.get(Settings.PROXY_COMPLETION_MAX_TOKENS));
      assertEquals(4096, d.get(Settings.PROXY_CHAT_MAX_TOKENS));
      assertEquals(0, d.get(Settings.PREFILL_HTTP_PORT));
      assertEquals(0, d.get(Settings.PREFILL_KV_PORT));
      assertEquals(2048, d.get(Settings.PREFILL_MAX_BATCH_TOKENS));
      assertEquals(256, d.get(Settings.PREFILL_MAX_WAITING));
      assertEquals(30, d.get(Settings.PREFILL_LEASE_SECONDS));
      assertEquals(10, d.get(Settings.PREFILL_KV_STALL_TIMEOUT_SECONDS));
      assertEquals(256, d.get(Settings.PREFILL_KV_CACHE_MB));
      assertEquals(EngineOptions.DEFAULT_KV_CACHE_BYTES, (long) d.get(Settings.PREFILL_KV_CACHE_MB) << 20);
      assertEquals(cores, d.get(Settings.PREFILL_THREADS));
      assertEquals(0, d.get(Settings.DECODE_HTTP_PORT));
      assertEquals(32, d.get(Settings.DECODE_MAX_NUM_SEQS));
      assertEquals(256, d.get(Settings.DECODE_MAX_WAITING));
      assertEquals(256, d.get(Settings.DECODE_KV_CACHE_MB));
      assertEquals(0, d.get(Settings.DECODE_THREADS), "0: the cores shared among the ranks");
      assertEquals(30, d.get(Settings.DECODE_KV_PULL_TIMEOUT_SECONDS));
      assertEquals(4, d.get(Settings.DECODE_KV_CONNECTIONS_PER_PEER));
      assertEquals(Optional.empty(), d.get(Settings.LOG_PATH));
      assertEquals(Optional.empty(), d.get(Settings.API_KEY));
      assertEquals(Optional.empty(), d.get(Settings.MODEL_SERVED_NAME));
      assertFalse(d.isSet(Settings.INSTANCE_ID));
      assertThrows(IllegalStateException.class, () -> d.get(Settings.INSTANCE_ID));
      ctx.completeNow();
    })));
  }

  @Test
  void withAndForRole() {
    DuetConfig base = DuetConfig.defaults().with(Settings.INSTANCE_ID, "p-7");
    assertEquals("p-7", base.forRole(Role.PREFILL).get(Settings.INSTANCE_ID),
        "an explicit id is kept");
    assertEquals("code", base.source("instance.id"));
    DuetConfig overlaid = base.with(Settings.DECODE_MAX_NUM_SEQS, 8);
    assertEquals(8, overlaid.get(Settings.DECODE_MAX_NUM_SEQS));
    assertEquals(256, overlaid.get(Settings.DECODE_MAX_WAITING), "siblings survive an overlay");
    assertEquals(32, base.get(Settings.DECODE_MAX_NUM_SEQS), "configs are immutable");
    assertThrows(IllegalArgumentException.class, () -> base.with(Settings.PROXY_PORT, -1));
    assertThrows(IllegalArgumentException.class,
        () -> base.with(Settings.CLUSTER_MEMBERS, List.of("host:port")));
  }

  @Test
  void modelWeightsAreMappedByDefaultAndTakeHugePagesOrFailNamingTheKey(Vertx vertx,
      VertxTestContext ctx) {
    DuetConfig base = DuetConfig.defaults();
    assertEquals(WeightStorage.MAPPED, base.get(Settings.MODEL_WEIGHTS));
    assertEquals(WeightStorage.HUGE_PAGES,
        base.with(Settings.MODEL_WEIGHTS, WeightStorage.HUGE_PAGES).get(Settings.MODEL_WEIGHTS));
    ConfigLoader.load(vertx, ConfigFlags.parse("--set", "model.weights=huge-pages"), Map.of())
        .compose(hugePages -> {
          ctx.verify(() -> assertEquals(WeightStorage.HUGE_PAGES,
              hugePages.get(Settings.MODEL_WEIGHTS)));
          return ConfigLoader.load(vertx, ConfigFlags.parse("--set", "model.weights=copied"),
              Map.of());
        })
        .onComplete(ctx.failing(e -> ctx.verify(() -> {
          assertTrue(e.getMessage().contains(
              "model.weights: expected one of mapped, huge-pages, found 'copied'"), e.getMessage());
          ctx.completeNow();
        })));
  }

  @Test
  void secretsAreMaskedButTokenizerAndTokenCountsAreNot() {
    DuetConfig config = DuetConfig.defaults()
        .with(Settings.API_KEY, Optional.of("k-1"))
        .with(Settings.MODEL_TOKENIZER, Optional.of(Path.of("/models/tokenizer.bin")))
        .with(Settings.CLUSTER_HAZELCAST_PROPERTIES, Map.of("hub.auth-token", "t-2",
            "hub.accessToken", "t-3", "db.password", "p-4", "s3.secret-access", "s-5",
            "hazelcast.operation.call.timeout.millis", "60000"));
    String described = config.describe();
    for (String secret : List.of("k-1", "t-2", "t-3", "p-4", "s-5")) {
      assertFalse(described.contains(secret), secret + " leaked:\n" + described);
    }
    assertTrue(described.matches("(?s).*api-key\\s+= \\*\\*\\*\\* .*"), described);
    assertTrue(described.matches(
        "(?s).*cluster\\.hazelcast-properties\\.db\\.password\\s+= \\*\\*\\*\\* .*"), described);
    assertTrue(described.contains("/models/tokenizer.bin"), described);
    assertTrue(described.contains("= 60000"), "other map entries are shown: " + described);
    assertTrue(described.matches("(?s).*prefill\\.max-batch-tokens\\s+= 2048.*"), described);
    assertFalse(config.toString().contains("k-1"), config.toString());
  }
}
