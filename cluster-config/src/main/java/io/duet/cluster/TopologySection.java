package io.duet.cluster;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.cluster.impl.JsonPaths;
import io.duet.contract.Role;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * One section of a topology file's {@code instances:}, as written: its role, host and cluster
 * port, and the settings it lays over the file's. Reading it lists what is wrong with it, and
 * leaves out of its settings the keys it may not set, so that each problem is reported once.
 */
final class TopologySection {

  static final String ROLE = "role";
  static final String HOST = "host";
  static final String CLUSTER_PORT = "cluster-port";

  private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_-]*");
  private static final SettingType<String> ROLE_TYPE = SettingType.choice(Stream.of(Role.values())
      .map(Role::wireName).toArray(String[]::new));
  private static final SettingType<String> HOST_TYPE = SettingType.string();
  private static final SettingType<Integer> PORT_TYPE = SettingType.integer(1, 65535);
  /** The groups of settings that belong to one role each. */
  private static final Set<String> ROLE_GROUPS = Stream.of(Role.values()).map(Role::wireName)
      .collect(Collectors.toSet());

  private final String name;
  private final String source;
  private final List<Problem> problems = new ArrayList<>();
  private final JsonObject settings = new JsonObject();
  private final Set<String> keys = new LinkedHashSet<>();
  private Role role;
  private String host;
  private Integer clusterPort;

  private TopologySection(String name, String source) {
    this.name = name;
    this.source = source;
  }

  /**
   * Reads the section {@code name} of a file whose problems come from {@code source}
   * ({@code file: <path>}).
   */
  static TopologySection read(String name, Object raw, String source) {
    TopologySection section = new TopologySection(name, source);
    if (!NAME.matcher(name).matches()) {
      section.problem(section.path(), "an instance name of letters, digits, '-' and '_'", name);
    }
    if (!(raw instanceof JsonObject json)) {
      section.problem(section.path(), "a section with role, host, cluster-port and settings",
          raw);
      return section;
    }
    JsonObject rest = json.copy();
    section.role = section.value(ROLE, ROLE_TYPE, rest.remove(ROLE)) instanceof String wire
        ? Role.fromWire(wire) : null;
    section.host = (String) section.value(HOST, HOST_TYPE, rest.remove(HOST));
    section.clusterPort = (Integer) section.value(CLUSTER_PORT, PORT_TYPE,
        rest.remove(CLUSTER_PORT));
    JsonPaths.flatten(rest).forEach(section::setting);
    return section;
  }

  private Object value(String key, SettingType<?> type, Object raw) {
    try {
      return type.decode(raw);
    } catch (IllegalArgumentException e) {
      problem(path() + "." + key, type.expected(), raw);
      return null;
    }
  }

  /** Keeps a setting of the section, or reports why it may not be there. */
  private void setting(String key, Object value) {
    String group = key.contains(".") ? key.substring(0, key.indexOf('.')) : key;
    Optional<Problem> unknown = Validator.unknownKey(key, value, knownKeys(), source);
    if (unknown.isPresent()) {
      problems.add(renamed(unknown.get(), path() + "." + key));
    } else if (group.equals("cluster") || group.equals("instance")) {
      problem(path() + "." + key, "no cluster.* or instance.* key in an instance section: the "
          + "section's host and cluster-port place the member, its name is instance.id, and the "
          + "cluster is the file's", value);
    } else if (role != null && ROLE_GROUPS.contains(group) && !group.equals(role.wireName())) {
      problem(path() + "." + key, "no " + group + ".* key in a " + role.wireName()
          + " instance", value);
    } else {
      JsonPaths.put(settings, key, value);
      keys.add(key);
    }
  }

  private static List<String> knownKeys() {
    return Stream.concat(Stream.of(ROLE, HOST, CLUSTER_PORT),
        Settings.all().stream().map(Setting::key)).toList();
  }

  private void problem(String key, String expected, Object value) {
    problems.add(new Problem(key, expected, Validator.found(key, value), source));
  }

  /**
   * The file layer of this instance: the file's settings ({@code top}), this section's over
   * them, then what the section's role, host, cluster port and name set. A proxy binds its HTTP
   * server to the host and embeds no prefill and decode instances, unless the file says
   * otherwise. {@code members} becomes {@code cluster.members} unless the file sets it.
   */
  DuetConfig.Layer layer(JsonObject top, List<String> members, String file) {
    JsonObject values = new JsonObject();
    if (role == Role.PROXY && host != null) {
      JsonPaths.put(values, Settings.PROXY_HOST.key(), host);
      JsonPaths.put(values, Settings.PROXY_EMBEDDED.key(), false);
    }
    values.mergeIn(top.copy(), true).mergeIn(settings.copy(), true);
    if (host != null) {
      JsonPaths.put(values, Settings.CLUSTER_HOST.key(), host);
    }
    if (clusterPort != null) {
      JsonPaths.put(values, Settings.CLUSTER_PORT.key(), clusterPort);
      JsonPaths.put(values, Settings.CLUSTER_PORT_COUNT.key(), 1);
    }
    JsonPaths.put(values, Settings.INSTANCE_ID.key(), name);
    if (JsonPaths.get(top, Settings.CLUSTER_MEMBERS.key()) == null) {
      JsonPaths.put(values, Settings.CLUSTER_MEMBERS.key(), members);
    }
    return DuetConfig.Layer.ofFile(file, values);
  }

  /**
   * A problem of this instance's configuration under the key the file gives it: the section's
   * own key ({@code instances.d0.decode.dp}), the instance key that set a derived setting
   * ({@code instances.d0.cluster-port} for {@code cluster.port}), else the file's key as it is.
   */
  Problem locate(Problem problem) {
    String key = problem.key();
    if (key.equals(Settings.CLUSTER_HOST.key())) {
      return renamed(problem, path() + "." + HOST);
    } else if (key.equals(Settings.CLUSTER_PORT.key())) {
      return renamed(problem, path() + "." + CLUSTER_PORT);
    } else if (keys.stream().anyMatch(own -> own.equals(key) || own.startsWith(key + "."))) {
      return renamed(problem, path() + "." + key);
    }
    return problem;
  }

  private static Problem renamed(Problem problem, String key) {
    return new Problem(key, problem.expected(), problem.found(), problem.source());
  }

  /** {@code instances.<name>}. */
  String path() {
    return Topology.INSTANCES + "." + name;
  }

  String name() {
    return name;
  }

  /** The role, or null when the section names none that is valid. */
  Role role() {
    return role;
  }

  /** {@code host:cluster-port}, or null when either is missing or invalid. */
  String member() {
    return host == null || clusterPort == null ? null : host + ":" + clusterPort;
  }

  /** What is wrong with the section as written, in the order found. */
  List<Problem> problems() {
    return problems;
  }
}
