package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.Role;
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
      assertEquals("duet", d.clusterName());
      assertEquals("file-cluster", f.clusterName());
      assertEquals("env-cluster", e.clusterName());
      assertEquals("flag-cluster", c.clusterName());
      assertEquals(List.of("default", "file", "env", "flag"), List.of(d.source("cluster.name"),
          f.source("cluster.name"), e.source("cluster.name"), c.source("cluster.name")));

      assertEquals(Optional.empty(), d.modelPath());
      assertEquals(Optional.of(Path.of("/file/model.bin")), f.modelPath());
      assertEquals(Optional.of(Path.of("/env/model.bin")), e.modelPath());
      assertEquals(Optional.of(Path.of("/flag/model.bin")), c.modelPath());

      assertEquals(7000, d.proxyPort());
      assertEquals(7100, f.proxyPort());
      assertEquals(7200, e.proxyPort());
      assertEquals(1, c.proxyPort(), "--set is a flag, above the environment");
      assertEquals("flag", c.source("proxy.port"));

      // keys set only by lower layers keep their values
      assertEquals(6000, c.clusterPort());
      assertEquals("file", c.source("cluster.port"));
      assertEquals(30, c.prefillLeaseSeconds());
      assertEquals("default", c.source("prefill.lease-seconds"));
      assertEquals(64, c.decodeMaxNumSeqs());
      assertEquals(List.of("10.0.0.1:5701", "p1"), c.members());
      assertEquals(Optional.of(ENV_SECRET), c.apiKey());
      assertEquals(Map.of("hazelcast.max.no.heartbeat.seconds", "15"), c.hazelcastProperties());
      assertEquals(Optional.of("model"), c.servedModelName());
      assertEquals(Optional.of(Path.of("/env/tokenizer.bin")), c.tokenizerPath());

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
        "--set", "model.served-name=null", "--set", "x.flag=true", "--set", "x.text=a=b");
    JsonObject overlay = flags.toJson();
    assertEquals(7001, overlay.getJsonObject("proxy").getInteger("port"));
    assertTrue(overlay.getJsonObject("model").containsKey("served-name"));
    assertEquals(null, overlay.getJsonObject("model").getValue("served-name"));
    assertEquals(true, overlay.getJsonObject("x").getBoolean("flag"));
    assertEquals("a=b", overlay.getJsonObject("x").getString("text"));
    assertThrows(CommandLine.ParameterException.class, () -> ConfigFlags.parse("--set", "novalue"));
  }

  @Test
  void configFileFromEnvironment(Vertx vertx, VertxTestContext ctx) throws IOException {
    String file = topology().toString();
    ConfigLoader.load(vertx, Role.PREFILL, new ConfigFlags(), Map.of("DUET_CONFIG", file))
        .onComplete(ctx.succeeding(config -> ctx.verify(() -> {
          assertEquals("file-cluster", config.clusterName());
          assertTrue(config.instanceId().startsWith("prefill-"), config.instanceId());
          assertTrue(config.instanceId().matches("prefill-[a-z0-9-]+-[0-9a-f]{6}"), config.instanceId());
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
      assertEquals("duet", d.clusterName());
      assertEquals("127.0.0.1", d.clusterHost());
      assertEquals(5701, d.clusterPort());
      assertEquals(100, d.clusterPortCount());
      assertEquals(List.of("127.0.0.1"), d.members());
      assertEquals(1000, d.heartbeatMillis());
      assertEquals(5000, d.heartbeatTimeoutMillis());
      assertEquals("llama2", d.chatTemplate());
      assertEquals(0, d.dpRank());
      assertEquals("127.0.0.1", d.proxyHost());
      assertEquals(7000, d.proxyPort());
      assertEquals(600, d.proxyRequestTimeoutSeconds());
      assertEquals(32, d.proxyStreamCredits());
      assertEquals(0, d.prefillHttpPort());
      assertEquals(0, d.prefillKvPort());
      assertEquals(2048, d.prefillMaxBatchTokens());
      assertEquals(256, d.prefillMaxWaiting());
      assertEquals(30, d.prefillLeaseSeconds());
      assertEquals(10, d.prefillKvStallTimeoutSeconds());
      assertEquals(256, d.prefillKvCacheMb());
      assertEquals(Runtime.getRuntime().availableProcessors(), d.prefillThreads());
      assertEquals(0, d.decodeHttpPort());
      assertEquals(32, d.decodeMaxNumSeqs());
      assertEquals(256, d.decodeMaxWaiting());
      assertEquals(256, d.decodeKvCacheMb());
      assertEquals(Runtime.getRuntime().availableProcessors(), d.decodeThreads());
      assertEquals(30, d.decodeKvPullTimeoutSeconds());
      assertEquals(4, d.decodeKvConnectionsPerPeer());
      assertEquals(Optional.empty(), d.logPath());
      assertEquals(Optional.empty(), d.apiKey());
      assertEquals(Optional.empty(), d.servedModelName());
      assertThrows(IllegalStateException.class, d::instanceId);
      ctx.completeNow();
    })));
  }

  @Test
  void withAndForRole() {
    DuetConfig base = DuetConfig.defaults().with("instance.id", "p-7");
    assertEquals("p-7", base.forRole(Role.PREFILL).instanceId(), "an explicit id is kept");
    assertEquals("code", base.source("instance.id"));
    DuetConfig overlaid = base.with(new JsonObject().put("decode", new JsonObject().put("max-num-seqs", 8)));
    assertEquals(8, overlaid.decodeMaxNumSeqs());
    assertEquals(256, overlaid.decodeMaxWaiting(), "siblings survive a nested overlay");
    assertEquals(32, base.decodeMaxNumSeqs(), "configs are immutable");
    assertThrows(IllegalArgumentException.class, () -> base.with("proxy.port", -1));
    assertThrows(IllegalArgumentException.class, () -> base.with("cluster.members", "host:port"));
  }

  @Test
  void routingPoliciesAreNamedWithParameterMapsThatDefaultToEmpty() {
    DuetConfig base = DuetConfig.defaults();
    assertEquals("least-prompt-tokens", base.proxyPrefillPolicy());
    assertEquals("least-load", base.proxyDecodePolicy());
    assertEquals(new JsonObject(), base.proxyPrefillPolicyParams());
    assertEquals(new JsonObject(), base.proxyDecodePolicyParams());

    DuetConfig set = base.with(ConfigFlags.parse("--set", "proxy.decode-policy=pinned",
        "--set", "proxy.decode-policy-params.instance=d1").toJson());
    assertEquals("pinned", set.proxyDecodePolicy());
    assertEquals(new JsonObject().put("instance", "d1"), set.proxyDecodePolicyParams());
    assertEquals(new JsonObject(), base.with("proxy.prefill-policy-params", null)
        .proxyPrefillPolicyParams(), "an empty YAML value is no parameters");

    IllegalArgumentException notAMap = assertThrows(IllegalArgumentException.class,
        () -> base.with("proxy.prefill-policy-params", "size=3"));
    assertTrue(notAMap.getMessage().contains("proxy.prefill-policy-params must be a map"),
        notAMap.getMessage());
    assertThrows(IllegalArgumentException.class, () -> base.with("proxy.decode-policy", " "));
  }

  @Test
  void modelWeightsAreMappedByDefaultAndTakeHugePagesOrFailNamingTheKey() {
    DuetConfig base = DuetConfig.defaults();
    assertFalse(base.hugePageWeights());
    assertTrue(base.with("model.weights", "huge-pages").hugePageWeights());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> base.with("model.weights", "copied"));
    assertTrue(e.getMessage().contains("model.weights must be mapped or huge-pages"),
        e.getMessage());
  }

  @Test
  void secretsAreMaskedButTokenizerAndTokenCountsAreNot() {
    DuetConfig config = DuetConfig.defaults()
        .with("api-key", "k-1")
        .with("model.tokenizer", "/models/tokenizer.bin")
        .with("hub.auth-token", "t-2")
        .with("hub.accessToken", "t-3")
        .with("db.password", "p-4")
        .with("s3.secret-access", "s-5");
    String described = config.describe();
    for (String secret : List.of("k-1", "t-2", "t-3", "p-4", "s-5")) {
      assertFalse(described.contains(secret), secret + " leaked:\n" + described);
    }
    assertTrue(described.contains("/models/tokenizer.bin"), described);
    assertTrue(described.matches("(?s).*prefill\\.max-batch-tokens\\s+= 2048.*"), described);
  }
}
