package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vertx.core.Vertx;
import io.vertx.junit5.VertxExtension;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** The environment variables and named flags made from the declarations. */
@ExtendWith(VertxExtension.class)
class NamedFlagsAndVariablesTest {

  /** The flags and variables users have: renaming one breaks their scripts. */
  private static final Set<String> FLAGS = Set.of("--model", "--tokenizer",
      "--served-model-name", "--port", "--cluster-name", "--cluster-host", "--cluster-port",
      "--members", "--instance-id", "--log-path", "--embedded", "--engine");
  private static final Set<String> VARIABLES = Set.of("MODEL_PATH", "TOKENIZER_PATH",
      "SERVED_MODEL_NAME", "LOG_PATH", "DUET_CLUSTER_NAME", "DUET_CLUSTER_HOST",
      "DUET_CLUSTER_PORT", "DUET_CLUSTER_MEMBERS", "DUET_INSTANCE_ID", "DUET_PROXY_PORT",
      "DUET_API_KEY", "DUET_CLUSTER_SECRET", "DUET_KV_TLS_CERT", "DUET_KV_TLS_KEY",
      "DUET_KV_TLS_TRUST", "DUET_ENGINE", "DUET_WARM_CACHE");

  @Command(name = "service")
  static final class Service {
    @Mixin
    ConfigFlags flags;

    @Option(names = "--own")
    String own;
  }

  @Test
  void theDeclaredFlagsAndVariablesAreTheOnesUsersHave() {
    assertEquals(new TreeSet<>(FLAGS), Settings.all().stream().flatMap(s -> s.flag().stream())
        .map(Setting.Flag::name).collect(Collectors.toCollection(TreeSet::new)));
    assertEquals(new TreeSet<>(VARIABLES), Settings.all().stream().flatMap(s -> s.env().stream())
        .collect(Collectors.toCollection(TreeSet::new)));
  }

  @Test
  void everyNamedFlagSetsItsSetting(Vertx vertx) throws Exception {
    DuetConfig config = Configs.load(vertx, ConfigFlags.parse("--model", "/m/stories.bin",
        "--tokenizer", "/m/tok.bin", "--served-model-name", "s", "--port", "7001",
        "--cluster-name", "c", "--cluster-host", "10.0.0.2", "--cluster-port", "5801",
        "--members", "a, b:5802", "--instance-id", "i-1", "--log-path", "/logs",
        "--no-embedded", "--engine", "sim"), Map.of());
    assertEquals(Optional.of(Path.of("/m/stories.bin")), config.get(Settings.MODEL_PATH));
    assertEquals(Optional.of(Path.of("/m/tok.bin")), config.get(Settings.MODEL_TOKENIZER));
    assertEquals(Optional.of("s"), config.get(Settings.MODEL_SERVED_NAME));
    assertEquals(7001, config.get(Settings.PROXY_PORT));
    assertEquals("c", config.get(Settings.CLUSTER_NAME));
    assertEquals("10.0.0.2", config.get(Settings.CLUSTER_HOST));
    assertEquals(5801, config.get(Settings.CLUSTER_PORT));
    assertEquals(List.of("a", "b:5802"), config.get(Settings.CLUSTER_MEMBERS));
    assertEquals("i-1", config.get(Settings.INSTANCE_ID));
    assertEquals(Optional.of(Path.of("/logs")), config.get(Settings.LOG_PATH));
    assertEquals(false, config.get(Settings.PROXY_EMBEDDED));
    assertEquals(Settings.ENGINE_SIM, config.get(Settings.ENGINE));
    for (Setting<?> setting : Settings.all()) {
      setting.flag().ifPresent(flag -> assertTrue(config.describe().contains(
          "(flag: " + flag.name() + ")"), flag + " is not named as a source"));
    }
    assertEquals(true, Configs.load(vertx, ConfigFlags.parse("--set", "proxy.embedded=false",
        "--embedded"), Map.of()).get(Settings.PROXY_EMBEDDED), "the named flag wins over --set");
  }

  @Test
  void flagsMixedIntoACommandParseAndShowInItsHelp() {
    Service service = new Service();
    CommandLine command = new CommandLine(service);
    command.parseArgs("--port", "7002", "--own", "x", "--set", "decode.max-num-seqs=8");
    assertEquals("x", service.own);
    assertEquals(7002, service.flags.toJson().getJsonObject("proxy").getInteger("port"));
    assertEquals(8, service.flags.toJson().getJsonObject("decode").getInteger("max-num-seqs"));
    String help = command.getUsageMessage();
    for (String flag : List.of("--config=FILE", "--set=KEY=VALUE", "--port=PORT",
        "--members=HOST[:PORT],...", "--[no-]embedded")) {
      assertTrue(help.contains(flag), flag + " missing from:\n" + help);
    }
    assertTrue(help.contains("--port=PORT           The proxy's HTTP port (0 = any free port)."),
        help);
  }

  @Test
  void everyVariableSetsItsSettingAndBlankOnesAreIgnored(Vertx vertx) throws Exception {
    Map<String, String> env = Map.ofEntries(Map.entry("MODEL_PATH", "/m/model.bin"),
        Map.entry("TOKENIZER_PATH", "/m/tok.bin"), Map.entry("SERVED_MODEL_NAME", " "),
        Map.entry("LOG_PATH", "/var/log/duet"), Map.entry("DUET_CLUSTER_NAME", "c"),
        Map.entry("DUET_CLUSTER_HOST", "10.0.0.3"), Map.entry("DUET_CLUSTER_PORT", " 5901 "),
        Map.entry("DUET_CLUSTER_MEMBERS", "p0,p1:5701,"), Map.entry("DUET_INSTANCE_ID", "d-9"),
        Map.entry("DUET_PROXY_PORT", "7300"), Map.entry("DUET_API_KEY", "sk-env"),
        Map.entry("DUET_CLUSTER_SECRET", "s3cret"), Map.entry("DUET_KV_TLS_CERT", "/tls/a.pem"),
        Map.entry("DUET_KV_TLS_KEY", "/tls/a.key"), Map.entry("DUET_KV_TLS_TRUST", "/tls/ca.pem"),
        Map.entry("DUET_ENGINE", "sim"), Map.entry("DUET_WARM_CACHE", "/var/cache/duet"));
    DuetConfig config = Configs.load(vertx, new ConfigFlags(), env);
    assertEquals(Optional.of(Path.of("/m/model.bin")), config.get(Settings.MODEL_PATH));
    assertEquals(Optional.of(Path.of("/m/tok.bin")), config.get(Settings.MODEL_TOKENIZER));
    assertEquals(Optional.of("model"), config.get(Settings.MODEL_SERVED_NAME),
        "a blank variable is unset: the name falls back to the model file's");
    assertEquals(DuetConfig.SOURCE_DEFAULT, config.source("model.served-name"));
    assertEquals(Optional.of(Path.of("/var/log/duet")), config.get(Settings.LOG_PATH));
    assertEquals("c", config.get(Settings.CLUSTER_NAME));
    assertEquals("10.0.0.3", config.get(Settings.CLUSTER_HOST));
    assertEquals(5901, config.get(Settings.CLUSTER_PORT));
    assertEquals(List.of("p0", "p1:5701"), config.get(Settings.CLUSTER_MEMBERS));
    assertEquals("d-9", config.get(Settings.INSTANCE_ID));
    assertEquals(7300, config.get(Settings.PROXY_PORT));
    assertEquals(Optional.of("sk-env"), config.get(Settings.API_KEY));
    assertEquals(Optional.of("s3cret"), config.get(Settings.CLUSTER_SECRET));
    assertEquals(Optional.of(Path.of("/tls/a.pem")), config.get(Settings.KV_TLS_CERT));
    assertEquals(Optional.of(Path.of("/tls/a.key")), config.get(Settings.KV_TLS_KEY));
    assertEquals(Optional.of(Path.of("/tls/ca.pem")), config.get(Settings.KV_TLS_TRUST));
    assertEquals(Settings.ENGINE_SIM, config.get(Settings.ENGINE));
    assertEquals(Optional.of(Path.of("/var/cache/duet")), config.get(Settings.MODEL_WARM_CACHE));
    assertEquals(Optional.of(Path.of("/var/cache/duet")), config.get(Settings.MODEL_WARM_CACHE));
    for (Setting<?> setting : Settings.all()) {
      setting.env().filter(variable -> !env.get(variable).isBlank()).ifPresent(variable ->
          assertTrue(config.describe().contains("(env: " + variable + ")"), variable));
    }
  }
}
