package io.duet.cluster;

import io.duet.cluster.impl.JsonPaths;
import io.duet.cluster.impl.Secrets;
import io.duet.contract.Role;
import io.vertx.core.json.JsonObject;
import java.net.InetAddress;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The whole configuration of a Duet process: one merged JSON object whose keys are the
 * kebab-case keys of the YAML topology files ({@code cluster.port},
 * {@code prefill.lease-seconds}, ...), read through the declarations of {@link Settings}:
 * {@code config.get(Settings.PROXY_PORT)}. {@link ConfigLoader} layers a topology file, the
 * environment and command-line flags over the declared defaults.
 *
 * <p>Instances are immutable and checked whole when made: unknown keys, values their
 * declaration does not allow and unmet conditions between settings fail together in one
 * {@link InvalidConfigException} that names, for each, the key, what is expected, what was
 * found and where it came from. The configuration remembers which source set each value
 * ({@link #source}), and {@link #describe()} prints it with secrets masked.
 */
public final class DuetConfig {

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

    /** The layer of a file's values: every key is set by the file. */
    static Layer ofFile(String file, JsonObject values) {
      Map<String, String> details = new TreeMap<>();
      JsonPaths.flatten(values).keySet().forEach(key -> details.put(key, file));
      return new Layer(SOURCE_FILE, values, details);
    }
  }

  /** Where a value came from: a source and, when known, the file, variable or flag. */
  private record Origin(String source, String detail) {
    @Override
    public String toString() {
      return detail == null ? source : source + ": " + detail;
    }
  }

  private static final Origin DEFAULT_ORIGIN = new Origin(SOURCE_DEFAULT, null);
  private static final JsonObject DEFAULTS = defaultValues();

  private final JsonObject json;
  private final Map<String, Origin> origins;

  private DuetConfig(JsonObject json, Map<String, Origin> origins) {
    this.json = json;
    this.origins = origins;
  }

  /** This configuration, if it has no problem. */
  private DuetConfig checked() {
    List<InvalidConfigException.Problem> problems = Validator.problems(this);
    if (!problems.isEmpty()) {
      throw new InvalidConfigException(problems);
    }
    return this;
  }

  /** The declared defaults of every setting. */
  public static DuetConfig defaults() {
    return merge(List.of(defaultsLayer()));
  }

  static Layer defaultsLayer() {
    return new Layer(SOURCE_DEFAULT, DEFAULTS.copy(), Map.of());
  }

  private static JsonObject defaultValues() {
    JsonObject values = new JsonObject();
    Settings.all().forEach(setting -> JsonPaths.put(values, setting.key(), setting.rawDefault()));
    return values;
  }

  /** Deep-merges the layers, later ones overriding earlier ones key by key. */
  static DuetConfig merge(List<Layer> layers) {
    return mergeUnchecked(layers).checked();
  }

  /**
   * {@link #merge} without the check, for a caller that checks the result itself (with
   * {@link Validator}) and reads what is valid of it.
   */
  static DuetConfig mergeUnchecked(List<Layer> layers) {
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
    Set<String> layerKeys = JsonPaths.flatten(layer.values()).keySet();
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
    if (isSet(Settings.INSTANCE_ID)) {
      return this;
    }
    String id = role.wireName() + "-" + shortHostName() + "-"
        + String.format("%06x", ThreadLocalRandom.current().nextInt(1 << 24));
    return derive(Settings.INSTANCE_ID, id, SOURCE_GENERATED);
  }

  /** A copy with one setting's value replaced; null unsets it. */
  public <T> DuetConfig with(Setting<T> setting, T value) {
    return derive(setting, value, SOURCE_CODE);
  }

  private <T> DuetConfig derive(Setting<T> setting, T value, String source) {
    JsonObject overlay = JsonPaths.put(new JsonObject(), setting.key(),
        value == null ? null : setting.type().encode(value));
    JsonObject merged = json.copy().mergeIn(overlay, true);
    return new DuetConfig(merged, origins(merged, origins, new Layer(source, overlay, Map.of())))
        .checked();
  }

  // ---------------------------------------------------------------- access

  /** The value of a setting: the highest layer's, else derived as declared, else the default. */
  public <T> T get(Setting<T> setting) {
    return setting.read(this, raw(setting.key()));
  }

  /** Whether a layer (or the default) gives the setting a value: not null, not blank. */
  public boolean isSet(Setting<?> setting) {
    return !Setting.isUnset(raw(setting.key()));
  }

  /** The whole merged configuration (a copy; secrets included, unlike {@link #describe()}). */
  public JsonObject toJson() {
    return json.copy();
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
   * The effective configuration, one {@code key = value  (source)} line per key, sorted by key
   * (one line per entry of a map setting). Secrets (settings declared secret, and map entries
   * whose name says token, secret or password) are printed as
   * {@value io.duet.cluster.impl.Secrets#MASK}. The source names the file, variable or flag
   * when there is one, e.g. {@code (env: MODEL_PATH)} or {@code (flag: --port)}.
   */
  public String describe() {
    Map<String, Object> leaves = leaves();
    int width = Math.min(40, leaves.keySet().stream().mapToInt(String::length).max().orElse(0));
    StringBuilder out = new StringBuilder();
    leaves.forEach((key, value) -> out.append(String.format(Locale.ROOT,
        "%-" + width + "s = %s  (%s)%n", key, render(key, value), origin(key))));
    return out.toString();
  }

  /** The configuration on one line, secrets masked. */
  @Override
  public String toString() {
    StringBuilder out = new StringBuilder("DuetConfig{");
    leaves().forEach((key, value) ->
        out.append(out.length() > 11 ? ", " : "").append(key).append('=').append(render(key, value)));
    return out.append('}').toString();
  }

  // ---------------------------------------------------------------- for the validator

  /** Every leaf under its dotted path, sorted (see {@link JsonPaths#flatten}). */
  Map<String, Object> leaves() {
    return JsonPaths.flatten(json);
  }

  /** The raw value at a dotted key, or null. */
  Object raw(String key) {
    return JsonPaths.get(json, key);
  }

  /** Where the value at {@code key}, or the first value nested under it, came from. */
  String origin(String key) {
    Origin origin = origins.get(key);
    if (origin == null) {
      origin = origins.entrySet().stream().filter(entry -> entry.getKey().startsWith(key + "."))
          .map(Map.Entry::getValue).findFirst().orElse(DEFAULT_ORIGIN);
    }
    return origin.toString();
  }

  /** A value as printed: secrets masked, arrays and objects as JSON. */
  static String render(String key, Object value) {
    return value != null && Secrets.isSecret(key) ? Secrets.MASK : JsonPaths.text(value);
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
