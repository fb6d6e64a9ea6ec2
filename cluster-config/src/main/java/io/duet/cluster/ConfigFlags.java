package io.duet.cluster;

import io.duet.cluster.impl.JsonPaths;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import picocli.CommandLine;
import picocli.CommandLine.Option;

/**
 * The configuration flags every Duet command shares; add them to a picocli command with
 * {@code @Mixin ConfigFlags config;}. Flags are the highest layer of the configuration (see
 * {@link ConfigLoader}); a flag not given leaves the lower layers' value in place.
 *
 * <p>{@code --set key.path=value} sets any key, e.g. {@code --set decode.max-num-seqs=64}; the
 * value becomes an integer, {@code true}/{@code false}, {@code null} or else a string. The
 * named flags are applied after all {@code --set}s, so {@code --port 7001} wins over
 * {@code --set proxy.port=7002}.
 */
public class ConfigFlags {

  @Option(names = "--config", paramLabel = "FILE",
      description = "YAML topology file (default: $DUET_CONFIG, else none).")
  Path config;

  @Option(names = "--model", paramLabel = "PATH", description = "llama2.c checkpoint (model.path).")
  String model;

  @Option(names = "--tokenizer", paramLabel = "PATH", description = "tokenizer.bin (model.tokenizer).")
  String tokenizer;

  @Option(names = "--served-model-name", paramLabel = "NAME",
      description = "Model name clients use (model.served-name).")
  String servedModelName;

  @Option(names = "--port", paramLabel = "PORT", description = "Proxy HTTP port (proxy.port).")
  Integer port;

  @Option(names = "--cluster-name", paramLabel = "NAME", description = "Cluster name (cluster.name).")
  String clusterName;

  @Option(names = "--cluster-host", paramLabel = "HOST",
      description = "Address this member binds to and announces (cluster.host).")
  String clusterHost;

  @Option(names = "--cluster-port", paramLabel = "PORT",
      description = "First Hazelcast port (cluster.port).")
  Integer clusterPort;

  @Option(names = "--members", paramLabel = "HOST[:PORT],...",
      description = "Comma-separated cluster members to join (cluster.members).")
  String members;

  @Option(names = "--instance-id", paramLabel = "ID", description = "Instance id (instance.id).")
  String instanceId;

  @Option(names = "--dp-rank", paramLabel = "RANK",
      description = "Data-parallel rank (instance.dp-rank).")
  Integer dpRank;

  @Option(names = "--log-path", paramLabel = "DIR",
      description = "Directory for log files (log.path).")
  String logPath;

  @Option(names = "--set", paramLabel = "KEY=VALUE",
      description = "Set any configuration key, e.g. --set decode.max-num-seqs=64 (repeatable).")
  Map<String, String> set = new LinkedHashMap<>();

  /** Parses {@code args} as nothing but these flags (for tools and tests). */
  public static ConfigFlags parse(String... args) {
    ConfigFlags flags = new ConfigFlags();
    new CommandLine(flags).parseArgs(args);
    return flags;
  }

  /** The {@code --config} file, if given. */
  public Optional<Path> configFile() {
    return Optional.ofNullable(config);
  }

  /** The overlay the given flags make, as nested JSON (empty when no flag was given). */
  public JsonObject toJson() {
    return layer().values();
  }

  DuetConfig.Layer layer() {
    JsonObject values = new JsonObject();
    Map<String, String> details = new LinkedHashMap<>();
    set.forEach((key, value) -> {
      String path = key.trim();
      JsonPaths.put(values, path, parseValue(value));
      details.put(path, "--set " + path);
    });
    put(values, details, "model.path", model, "--model");
    put(values, details, "model.tokenizer", tokenizer, "--tokenizer");
    put(values, details, "model.served-name", servedModelName, "--served-model-name");
    put(values, details, "proxy.port", port, "--port");
    put(values, details, "cluster.name", clusterName, "--cluster-name");
    put(values, details, "cluster.host", clusterHost, "--cluster-host");
    put(values, details, "cluster.port", clusterPort, "--cluster-port");
    put(values, details, "cluster.members", members == null ? null : splitList(members), "--members");
    put(values, details, "instance.id", instanceId, "--instance-id");
    put(values, details, "instance.dp-rank", dpRank, "--dp-rank");
    put(values, details, "log.path", logPath, "--log-path");
    return new DuetConfig.Layer(DuetConfig.SOURCE_FLAG, values, details);
  }

  private static void put(JsonObject values, Map<String, String> details, String key, Object value,
      String flag) {
    if (value != null) {
      JsonPaths.put(values, key, value);
      details.put(key, flag);
    }
  }

  /** A comma-separated list, trimmed, blanks dropped. */
  static List<String> splitList(String text) {
    return Arrays.stream(text.split(",")).map(String::trim).filter(s -> !s.isEmpty()).toList();
  }

  /** {@code --set} values: integers, booleans and null by their spelling, anything else a string. */
  static Object parseValue(String text) {
    String value = text.trim();
    if (value.matches("[+-]?\\d{1,18}")) {
      long number = Long.parseLong(value);
      return number == (int) number ? (Object) (int) number : (Object) number;
    }
    return switch (value) {
      case "true" -> Boolean.TRUE;
      case "false" -> Boolean.FALSE;
      case "null" -> null;
      default -> value;
    };
  }
}
