package io.duet.cluster;

import io.duet.cluster.impl.JsonPaths;
import io.duet.cluster.impl.Secrets;
import io.duet.cluster.impl.Yaml;
import io.duet.contract.Role;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.InetAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The whole configuration of a Duet process: typed accessors over one merged JSON object whose
 * keys are the kebab-case keys of the YAML topology files ({@code cluster.port},
 * {@code prefill.lease-seconds}, ...). Every key and its default lives in the
 * {@value #DEFAULTS_RESOURCE} resource; {@link ConfigLoader} layers a topology file, the
 * environment and command-line flags over it.
 *
 * <p>Instances are immutable and validated when made: a value of the wrong type or out of range
 * fails with an {@link IllegalArgumentException} that names the key and where it came from.
 * Optional values (paths, names, the API key) are returned as {@link Optional}, empty when unset
 * or blank. The configuration also remembers which source set each value ({@link #source}), and
 * {@link #describe()} prints it with secrets masked.
 */
public final class DuetConfig {

  /** Classpath resource holding every key with its default value. */
  public static final String DEFAULTS_RESOURCE = "duet-defaults.yaml";

  /** Source of a value that no layer overrode. */
  public static final String SOURCE_DEFAULT = "default";
  /** Source of a value set by the YAML topology file. */
  public static final String SOURCE_FILE = "file";
  /** Source of a value set by an environment variable. */
  public static final String SOURCE_ENV = "env";
  /** Source of a value set by a command-line flag. */
  public static final String SOURCE_FLAG = "flag";
  /** Source of a value set in code with {@link #with}. */
  public static final String SOURCE_CODE = "code";
  /** Source of the instance id made up by {@link #forRole}. */
  public static final String SOURCE_GENERATED = "generated";

  /** One layer of configuration: values and, per dotted key, what set it (a flag, a variable). */
  record Layer(String source, JsonObject values, Map<String, String> details) {
  }

  /** Where a value came from: a source and, when known, the file, variable or flag. */
  private record Origin(String source, String detail) {
    @Override
    public String toString() {
      return detail == null ? source : source + ": " + detail;
    }
  }

  private static volatile JsonObject defaultsCache;

  private final JsonObject json;
  private final Map<String, Origin> origins;

  private DuetConfig(JsonObject json, Map<String, Origin> origins) {
    this.json = json;
    this.origins = origins;
    validate();
  }

  /** The built-in defaults, as read from {@value #DEFAULTS_RESOURCE}. */
  public static DuetConfig defaults() {
    return merge(List.of(defaultsLayer()));
  }

  static Layer defaultsLayer() {
    JsonObject cached = defaultsCache;
    if (cached == null) {
      cached = Yaml.readResource(DEFAULTS_RESOURCE);
      defaultsCache = cached;
    }
    return new Layer(SOURCE_DEFAULT, cached.copy(), Map.of());
  }

  /** Deep-merges the layers, later ones overriding earlier ones key by key. */
  static DuetConfig merge(List<Layer> layers) {
    JsonObject merged = new JsonObject();
    Map<String, Origin> origins = Map.of();
    for (Layer layer : layers) {
      // merge a copy: mergeIn adopts nested objects of its argument and mutates them later
      merged.mergeIn(layer.values().copy(), true);
      origins = origins(merged, origins, layer);
    }
    return new DuetConfig(merged, origins);
  }

  /** Each leaf of {@code merged} comes from {@code layer} if the layer has it, else as before. */
  private static Map<String, Origin> origins(JsonObject merged, Map<String, Origin> previous,
      Layer layer) {
    Map<String, Origin> origins = new TreeMap<>();
    // Compare flattened keys: a Hazelcast property name has dots of its own, so splitting a key
    // at every dot would not find it in the layer.
    java.util.Set<String> layerKeys = JsonPaths.flatten(layer.values()).keySet();
    for (String key : JsonPaths.flatten(merged).keySet()) {
      Origin origin = layerKeys.contains(key)
          ? new Origin(layer.source(), layer.details().get(key))
          : previous.get(key);
      if (origin != null) {
        origins.put(key, origin);
      }
    }
    return origins;
  }

  // ---------------------------------------------------------------- derived configurations

  /**
   * This configuration for an instance of {@code role}: when {@code instance.id} is unset it is
   * filled with {@code <role>-<hostname>-<6 random hex digits>}; otherwise the configuration
   * is returned unchanged.
   */
  public DuetConfig forRole(Role role) {
    Objects.requireNonNull(role, "role");
    if (optionalString("instance.id").isPresent()) {
      return this;
    }
    String id = role.wireName() + "-" + shortHostName() + "-"
        + String.format("%06x", ThreadLocalRandom.current().nextInt(1 << 24));
    return derive(JsonPaths.put(new JsonObject(), "instance.id", id), SOURCE_GENERATED);
  }

  /** A copy with one value replaced ({@code key} is dotted, e.g. {@code "prefill.kv-port"}). */
  public DuetConfig with(String key, Object value) {
    return derive(JsonPaths.put(new JsonObject(), key, value), SOURCE_CODE);
  }

  /** A copy with {@code overlay} deep-merged over this configuration. */
  public DuetConfig with(JsonObject overlay) {
    return derive(overlay.copy(), SOURCE_CODE);
  }

  private DuetConfig derive(JsonObject overlay, String source) {
    JsonObject merged = json.copy().mergeIn(overlay, true);
    return new DuetConfig(merged, origins(merged, origins, new Layer(source, overlay, Map.of())));
  }

  // ---------------------------------------------------------------- generic access

  /** The whole merged configuration (a copy; secrets included, unlike {@link #describe()}). */
  public JsonObject toJson() {
    return json.copy();
  }

  /** The raw value at a dotted key, or null when unset. Arrays and objects are copies. */
  public Object value(String key) {
    Object value = JsonPaths.get(json, key);
    if (value instanceof JsonObject object) {
      return object.copy();
    }
    return value instanceof JsonArray array ? array.copy() : value;
  }

  /**
   * Which source set a key: {@value #SOURCE_DEFAULT}, {@value #SOURCE_FILE},
   * {@value #SOURCE_ENV}, {@value #SOURCE_FLAG}, {@value #SOURCE_CODE} or
   * {@value #SOURCE_GENERATED}; null for a key no source set.
   */
  public String source(String key) {
    Origin origin = origins.get(key);
    return origin == null ? null : origin.source();
  }

  /**
   * The effective configuration, one {@code key = value  (source)} line per key, sorted by key.
   * Secret values ({@code api-key} and keys naming a token, secret or password) are printed as
   * {@value io.duet.cluster.impl.Secrets#MASK}. The source names the file, variable or flag
   * when there is one, e.g. {@code (env: MODEL_PATH)} or {@code (flag: --port)}.
   */
  public String describe() {
    Map<String, Object> leaves = JsonPaths.flatten(json);
    int width = Math.min(40, leaves.keySet().stream().mapToInt(String::length).max().orElse(0));
    StringBuilder out = new StringBuilder();
    leaves.forEach((key, value) -> {
      Origin origin = origins.getOrDefault(key, new Origin(SOURCE_DEFAULT, null));
      out.append(String.format(Locale.ROOT, "%-" + width + "s = %s  (%s)%n", key,
          render(key, value), origin));
    });
    return out.toString();
  }

  /** The configuration on one line, secrets masked. */
  @Override
  public String toString() {
    StringBuilder out = new StringBuilder("DuetConfig{");
    JsonPaths.flatten(json).forEach((key, value) ->
        out.append(out.length() > 11 ? ", " : "").append(key).append('=').append(render(key, value)));
    return out.append('}').toString();
  }

  private static String render(String key, Object value) {
    if (value == null) {
      return "null";
    }
    if (Secrets.isSecret(key)) {
      return Secrets.MASK;
    }
    if (value instanceof JsonObject object) {
      return object.encode();
    }
    return value instanceof JsonArray array ? array.encode() : value.toString();
  }

  // ---------------------------------------------------------------- cluster

  /** {@code cluster.name}: the Hazelcast cluster name; only members with the same name join. */
  public String clusterName() {
    return requiredString("cluster.name");
  }

  /** {@code cluster.host}: the address this member binds to and announces. */
  public String clusterHost() {
    return requiredString("cluster.host");
  }

  /** {@code cluster.port}: the first Hazelcast port tried (auto-increment is on). */
  public int clusterPort() {
    return integer("cluster.port", 1, 65535);
  }

  /** {@code cluster.port-count}: how many ports from {@link #clusterPort()} may be used. */
  public int clusterPortCount() {
    return integer("cluster.port-count", 1, 65535);
  }

  /**
   * {@code cluster.members}: the TCP-IP join list, each {@code host} or {@code host:port}. A
   * YAML list or one comma-separated string; blanks are dropped.
   */
  public List<String> members() {
    Object value = JsonPaths.get(json, "cluster.members");
    List<String> members = new ArrayList<>();
    if (value instanceof JsonArray array) {
      for (Object item : array) {
        if (item != null && !item.toString().isBlank()) {
          members.add(item.toString().trim());
        }
      }
    } else if (value instanceof String text) {
      for (String item : text.split(",")) {
        if (!item.isBlank()) {
          members.add(item.trim());
        }
      }
    } else if (value != null) {
      throw invalid("cluster.members", "a list of host or host:port", value);
    }
    return List.copyOf(members);
  }

  /** {@code cluster.heartbeat-millis}: how often every instance announces itself. */
  public long heartbeatMillis() {
    return integer("cluster.heartbeat-millis", 1, Integer.MAX_VALUE);
  }

  /** {@code cluster.heartbeat-timeout-millis}: an instance silent this long is dropped. */
  public long heartbeatTimeoutMillis() {
    return integer("cluster.heartbeat-timeout-millis", 1, Integer.MAX_VALUE);
  }

  /**
   * {@code cluster.hazelcast-properties}: extra Hazelcast properties, by their full dotted name.
   * Nested maps (as {@code --set cluster.hazelcast-properties.hazelcast.x=1} makes) are
   * flattened back into dotted names.
   */
  public Map<String, String> hazelcastProperties() {
    Object value = JsonPaths.get(json, "cluster.hazelcast-properties");
    if (value == null) {
      return Map.of();
    }
    if (!(value instanceof JsonObject object)) {
      throw invalid("cluster.hazelcast-properties", "a map of property names to values", value);
    }
    Map<String, String> properties = new TreeMap<>();
    JsonPaths.flatten(object).forEach((key, v) -> {
      if (v != null) {
        properties.put(key, v.toString());
      }
    });
    return properties;
  }

  // ---------------------------------------------------------------- model

  /** {@code model.path}: the llama2.c checkpoint; empty when unset. */
  public Optional<Path> modelPath() {
    return optionalString("model.path").map(Path::of);
  }

  /** {@code model.tokenizer}: the tokenizer file; empty when unset. */
  public Optional<Path> tokenizerPath() {
    return optionalString("model.tokenizer").map(Path::of);
  }

  /**
   * The model name clients use: {@code model.served-name}, else the file name of
   * {@code model.path} without its extension, else empty.
   */
  public Optional<String> servedModelName() {
    Optional<String> name = optionalString("model.served-name");
    if (name.isPresent()) {
      return name;
    }
    return modelPath().map(Path::getFileName).map(Path::toString).map(file -> {
      int dot = file.lastIndexOf('.');
      return dot > 0 ? file.substring(0, dot) : file;
    });
  }

  /**
   * {@code model.weights}: {@code mapped} (memory-mapped from the checkpoint) or
   * {@code huge-pages} (copied off the heap onto transparent huge pages: faster decode, slower
   * start).
   */
  public boolean hugePageWeights() {
    String value = requiredString("model.weights");
    return switch (value) {
      case "mapped" -> false;
      case "huge-pages" -> true;
      default -> throw invalid("model.weights", "mapped or huge-pages", value);
    };
  }

  /** {@code model.chat-template}: the prompt template the proxy applies to chat messages. */
  public String chatTemplate() {
    return requiredString("model.chat-template");
  }

  // ---------------------------------------------------------------- instance

  /**
   * {@code instance.id}: this instance's id, unique in the cluster.
   *
   * @throws IllegalStateException when unset and this configuration was not made by
   *     {@link #forRole} (or {@link ConfigLoader#load(io.vertx.core.Vertx, Role, ConfigFlags, Map)})
   */
  public String instanceId() {
    return optionalString("instance.id").orElseThrow(() -> new IllegalStateException(
        "instance.id is unset: use DuetConfig.forRole(role) to generate one"));
  }

  /** {@code instance.dp-rank}: the data-parallel rank within a decode instance. */
  public int dpRank() {
    return integer("instance.dp-rank", 0, Integer.MAX_VALUE);
  }

  // ---------------------------------------------------------------- proxy

  /** {@code proxy.host}: the address the proxy's HTTP server binds to. */
  public String proxyHost() {
    return requiredString("proxy.host");
  }

  /** {@code proxy.port}: the proxy's HTTP port (0 = ephemeral). */
  public int proxyPort() {
    return integer("proxy.port", 0, 65535);
  }

  /** {@code proxy.request-timeout-seconds}: the end-to-end limit of one request. */
  public int proxyRequestTimeoutSeconds() {
    return integer("proxy.request-timeout-seconds", 1, Integer.MAX_VALUE);
  }

  /** {@code proxy.stream-credits}: decode events a stream may have in flight to the proxy. */
  public int proxyStreamCredits() {
    return integer("proxy.stream-credits", 1, Integer.MAX_VALUE);
  }

  /** HTTP servers of the proxy: {@code proxy.http-instances}, or one per core when 0. */
  public int proxyHttpInstances() {
    return threads("proxy.http-instances");
  }

  /** Whether the proxy also runs a prefill and a decode instance in its own JVM. */
  public boolean proxyEmbedded() {
    return bool("proxy.embedded");
  }

  /** {@code proxy.prefill-policy}: the name of the routing policy that picks prefill instances. */
  public String proxyPrefillPolicy() {
    return requiredString("proxy.prefill-policy");
  }

  /** {@code proxy.prefill-policy-params}: the prefill routing policy's parameters; may be empty. */
  public JsonObject proxyPrefillPolicyParams() {
    return map("proxy.prefill-policy-params");
  }

  /** {@code proxy.decode-policy}: the name of the routing policy that picks decode targets. */
  public String proxyDecodePolicy() {
    return requiredString("proxy.decode-policy");
  }

  /** {@code proxy.decode-policy-params}: the decode routing policy's parameters; may be empty. */
  public JsonObject proxyDecodePolicyParams() {
    return map("proxy.decode-policy-params");
  }

  // ---------------------------------------------------------------- prefill

  /** {@code prefill.http-port}: metrics/health port of a prefill instance (0 = ephemeral). */
  public int prefillHttpPort() {
    return integer("prefill.http-port", 0, 65535);
  }

  /** {@code prefill.kv-port}: the KV transfer server's port (0 = ephemeral). */
  public int prefillKvPort() {
    return integer("prefill.kv-port", 0, 65535);
  }

  /** {@code prefill.max-batch-tokens}: prompt tokens prefilled in one batch. */
  public int prefillMaxBatchTokens() {
    return integer("prefill.max-batch-tokens", 1, Integer.MAX_VALUE);
  }

  /** {@code prefill.max-waiting}: queued prefill requests before new ones are refused. */
  public int prefillMaxWaiting() {
    return integer("prefill.max-waiting", 0, Integer.MAX_VALUE);
  }

  /** {@code prefill.lease-seconds}: how long prefilled KV is held for a decode to pull. */
  public int prefillLeaseSeconds() {
    return integer("prefill.lease-seconds", 1, Integer.MAX_VALUE);
  }

  /**
   * {@code prefill.kv-stall-timeout-seconds}: how long a KV send may wait for its decode instance
   * to read before the connection is closed and the pull's blocks are let go.
   */
  public int prefillKvStallTimeoutSeconds() {
    return integer("prefill.kv-stall-timeout-seconds", 1, Integer.MAX_VALUE);
  }

  /** {@code prefill.kv-cache-mb}: the prefill instance's KV cache size. */
  public int prefillKvCacheMb() {
    return integer("prefill.kv-cache-mb", 1, Integer.MAX_VALUE);
  }

  /** Compute threads of a prefill instance: {@code prefill.threads}, or all cores when 0. */
  public int prefillThreads() {
    return threads("prefill.threads");
  }

  // ---------------------------------------------------------------- decode

  /** {@code decode.http-port}: metrics/health port of a decode instance (0 = ephemeral). */
  public int decodeHttpPort() {
    return integer("decode.http-port", 0, 65535);
  }

  /** {@code decode.max-num-seqs}: sequences decoded together in the running batch. */
  public int decodeMaxNumSeqs() {
    return integer("decode.max-num-seqs", 1, Integer.MAX_VALUE);
  }

  /** {@code decode.max-waiting}: queued decode requests before new ones are refused. */
  public int decodeMaxWaiting() {
    return integer("decode.max-waiting", 0, Integer.MAX_VALUE);
  }

  /** {@code decode.kv-cache-mb}: the decode instance's KV cache size. */
  public int decodeKvCacheMb() {
    return integer("decode.kv-cache-mb", 1, Integer.MAX_VALUE);
  }

  /** Compute threads of a decode instance: {@code decode.threads}, or all cores when 0. */
  public int decodeThreads() {
    return threads("decode.threads");
  }

  /** {@code decode.kv-pull-timeout-seconds}: the limit for pulling one sequence's KV. */
  public int decodeKvPullTimeoutSeconds() {
    return integer("decode.kv-pull-timeout-seconds", 1, Integer.MAX_VALUE);
  }

  /** {@code decode.kv-connections-per-peer}: KV connections kept open to each prefill. */
  public int decodeKvConnectionsPerPeer() {
    return integer("decode.kv-connections-per-peer", 1, Integer.MAX_VALUE);
  }

  // ---------------------------------------------------------------- log, secrets

  /** {@code log.path}: the directory for log files; empty for console only. */
  public Optional<Path> logPath() {
    return optionalString("log.path").map(Path::of);
  }

  /** {@code api-key}: the key clients must present; empty when none is required. */
  public Optional<String> apiKey() {
    return optionalString("api-key");
  }

  // ---------------------------------------------------------------- typed reads

  private void validate() {
    clusterName();
    clusterHost();
    clusterPort();
    clusterPortCount();
    for (String member : members()) {
      int colon = member.lastIndexOf(':');
      if (colon >= 0 && member.indexOf(':') == colon) {
        String port = member.substring(colon + 1);
        if (colon == 0 || !port.matches("\\d{1,5}") || Integer.parseInt(port) > 65535) {
          throw invalid("cluster.members", "a list of host or host:port", member);
        }
      }
    }
    if (heartbeatTimeoutMillis() <= heartbeatMillis()) {
      throw new IllegalArgumentException("cluster.heartbeat-timeout-millis ("
          + heartbeatTimeoutMillis() + ") must be greater than cluster.heartbeat-millis ("
          + heartbeatMillis() + ")");
    }
    hazelcastProperties();
    chatTemplate();
    hugePageWeights();
    dpRank();
    proxyHost();
    proxyPort();
    proxyRequestTimeoutSeconds();
    proxyStreamCredits();
    proxyHttpInstances();
    proxyPrefillPolicy();
    proxyPrefillPolicyParams();
    proxyDecodePolicy();
    proxyDecodePolicyParams();
    prefillHttpPort();
    prefillKvPort();
    prefillMaxBatchTokens();
    prefillMaxWaiting();
    prefillLeaseSeconds();
    prefillKvStallTimeoutSeconds();
    prefillKvCacheMb();
    prefillThreads();
    decodeHttpPort();
    decodeMaxNumSeqs();
    decodeMaxWaiting();
    decodeKvCacheMb();
    decodeThreads();
    decodeKvPullTimeoutSeconds();
    decodeKvConnectionsPerPeer();
    for (String key : List.of("model.path", "model.tokenizer", "model.served-name", "instance.id",
        "log.path", "api-key")) {
      optionalString(key);
    }
  }

  private int threads(String key) {
    int threads = integer(key, 0, Integer.MAX_VALUE);
    return threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
  }

  private String requiredString(String key) {
    return optionalString(key).orElseThrow(() -> invalid(key, "a non-empty string", null));
  }

  private Optional<String> optionalString(String key) {
    Object value = JsonPaths.get(json, key);
    if (value == null) {
      return Optional.empty();
    }
    if (value instanceof JsonObject || value instanceof JsonArray) {
      throw invalid(key, "a single value", value);
    }
    String text = value.toString().trim();
    return text.isEmpty() ? Optional.empty() : Optional.of(text);
  }

  /** A map (a copy); empty when unset. */
  private JsonObject map(String key) {
    Object value = value(key);
    if (value == null) {
      return new JsonObject();
    }
    if (!(value instanceof JsonObject object)) {
      throw invalid(key, "a map", value);
    }
    return object;
  }

  private int integer(String key, int min, int max) {
    Object value = JsonPaths.get(json, key);
    long result;
    if (value instanceof Integer || value instanceof Long || value instanceof Short
        || value instanceof Byte) {
      result = ((Number) value).longValue();
    } else if (value instanceof Number number && number.doubleValue() == Math.rint(number.doubleValue())
        && Math.abs(number.doubleValue()) < Long.MAX_VALUE) {
      result = number.longValue();
    } else if (value instanceof String text && text.trim().matches("[+-]?\\d{1,18}")) {
      result = Long.parseLong(text.trim());
    } else {
      throw invalid(key, "an integer", value);
    }
    if (result < min || result > max) {
      throw invalid(key, max == Integer.MAX_VALUE ? "an integer >= " + min
          : "an integer in [" + min + ", " + max + "]", value);
    }
    return (int) result;
  }

  private boolean bool(String key) {
    Object value = JsonPaths.get(json, key);
    if (value instanceof Boolean b) {
      return b;
    }
    if (value instanceof String text && text.trim().matches("(?i)true|false")) {
      return Boolean.parseBoolean(text.trim());
    }
    throw invalid(key, "true or false", value);
  }

  private IllegalArgumentException invalid(String key, String expected, Object value) {
    Origin origin = origins.getOrDefault(key, new Origin(SOURCE_DEFAULT, null));
    String shown = value == null ? "nothing" : "'" + render(key, value) + "'";
    return new IllegalArgumentException(
        key + " must be " + expected + ", got " + shown + " (" + origin + ")");
  }

  private static String shortHostName() {
    String host;
    try {
      host = InetAddress.getLocalHost().getHostName();
    } catch (Exception e) {
      host = "localhost";
    }
    int dot = host.indexOf('.');
    if (dot > 0) {
      host = host.substring(0, dot);
    }
    host = host.toLowerCase(Locale.ROOT).replaceAll("[^a-z0-9-]", "-");
    return host.isEmpty() ? "localhost" : host;
  }
}
