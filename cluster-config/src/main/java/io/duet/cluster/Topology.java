package io.duet.cluster;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.cluster.impl.JsonPaths;
import io.duet.contract.Role;
import io.duet.engine.ModelInfo;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * A topology file that names its instances: one file for every process of a deployment, each
 * started with {@code --config FILE --instance NAME} and taking its own section.
 *
 * <pre>
 * cluster: {name: duet-2p1d}
 * decode: {max-num-seqs: 8}            # the file's settings apply to every instance
 * instances:
 *   c0: {role: proxy, host: 127.0.0.1, cluster-port: 5701, proxy: {port: 7000}}
 *   p0: {role: prefill, host: 127.0.0.1, cluster-port: 5702,
 *        prefill: {kv-port: 6100, http-port: 8100}}
 *   d0: {role: decode, host: 127.0.0.1, cluster-port: 5704, decode: {dp: 2, http-port: 9100}}
 * </pre>
 *
 * An instance's configuration is the file's settings with its section's over them: {@code host}
 * sets {@code cluster.host} (its servers bind to it and announce it; a proxy's HTTP server too,
 * unless {@code proxy.host} is set), {@code cluster-port} sets {@code cluster.port} with a port
 * count of 1, the section's name sets {@code instance.id}, and, unless the file sets
 * {@code cluster.members}, every instance's {@code host:cluster-port} are the members. A proxy
 * instance embeds no prefill and decode instances unless the file says so.
 *
 * <p>Reading a topology checks the whole file and reports every problem at once, each under the
 * key the file gives it ({@code instances.d0.decode.decode-gear-list}): every instance's
 * configuration as {@link DuetConfig} checks it; {@code role}, {@code host} and
 * {@code cluster-port} of each section; keys a section may not set (unknown ones, with the
 * nearest known key, {@code cluster.*} and {@code instance.*}, another role's settings); at
 * least one instance of each role; and every port fixed and used once per host (a decode
 * instance has a status port per rank, {@code decode.http-port + rank}). What depends on the
 * model ({@link ModelChecks}) is checked where the model is read: {@link
 * Instance#modelProblems}.
 */
public final class Topology {

  /** The key of the instance sections. */
  public static final String INSTANCES = "instances";

  /**
   * A port an instance listens on.
   *
   * @param host where it listens (a proxy bound to a wildcard address: the instance's host)
   * @param setting the setting that names the port ({@code cluster.port} for the cluster port)
   * @param rank the decode rank of a status port, -1 for any other port
   */
  public record Endpoint(String host, int port, Setting<?> setting, int rank) {
  }

  /** One instance of the topology: its name, role and whole configuration. */
  public static final class Instance {

    private final TopologySection section;
    private final DuetConfig.Layer layer;
    private final DuetConfig config;

    private Instance(TopologySection section, DuetConfig.Layer layer, DuetConfig config) {
      this.section = section;
      this.layer = layer;
      this.config = config;
    }

    /** The section's name, which is the instance id. */
    public String name() {
      return section.name();
    }

    public Role role() {
      return section.role();
    }

    /**
     * The instance's configuration from the declared defaults, the file and the environment
     * the topology was read with (a process adds its flags).
     */
    public DuetConfig config() {
      return config;
    }

    /** Where it runs: {@code cluster.host}. */
    public String host() {
      return config.get(Settings.CLUSTER_HOST);
    }

    /** The data-parallel ranks of a decode instance, each with a status port; 1 for others. */
    public int ranks() {
      return role() == Role.DECODE ? config.get(Settings.DECODE_DP) : 1;
    }

    /**
     * Every port it listens on: the cluster port, then a proxy's HTTP port, a prefill
     * instance's KV and status ports, or a decode instance's status port of each rank.
     */
    public List<Endpoint> ports() {
      List<Endpoint> ports = new ArrayList<>();
      ports.add(endpoint(Settings.CLUSTER_PORT));
      switch (role()) {
        case PROXY -> ports.add(new Endpoint(proxyHost(), config.get(Settings.PROXY_PORT),
            Settings.PROXY_PORT, -1));
        case PREFILL -> {
          ports.add(endpoint(Settings.PREFILL_KV_PORT));
          ports.add(endpoint(Settings.PREFILL_HTTP_PORT));
        }
        case DECODE -> {
          for (int rank = 0; rank < ranks(); rank++) {
            ports.add(new Endpoint(host(), config.get(Settings.DECODE_HTTP_PORT) + rank,
                Settings.DECODE_HTTP_PORT, rank));
          }
          List<Integer> channel = ExpertParallelNodes.ownPorts(config);
          for (int rank = 0; rank < channel.size(); rank++) {
            ports.add(new Endpoint(host(), channel.get(rank), Settings.DECODE_EP_NODES, rank));
          }
        }
      }
      return ports;
    }

    /**
     * The ports that answer {@code GET /health}: a proxy's HTTP port, a prefill instance's
     * status port, each decode rank's status port.
     */
    public List<Endpoint> healthEndpoints() {
      return ports().stream().filter(endpoint -> endpoint.setting() != Settings.CLUSTER_PORT
          && endpoint.setting() != Settings.PREFILL_KV_PORT
          && endpoint.setting() != Settings.DECODE_EP_NODES).toList();
    }

    /**
     * What {@link ModelChecks} finds wrong with this instance for {@code model}, under the
     * keys of the file.
     */
    public List<Problem> modelProblems(ModelInfo model) {
      return ModelChecks.problems(config, model).stream().map(section::locate).toList();
    }

    TopologySection section() {
      return section;
    }

    /** What the file gives this instance, as the file layer of its process's configuration. */
    DuetConfig.Layer layer() {
      return layer;
    }

    private Endpoint endpoint(Setting<Integer> port) {
      return new Endpoint(host(), config.get(port), port, -1);
    }

    private String proxyHost() {
      String bound = config.get(Settings.PROXY_HOST);
      return bound.equals("0.0.0.0") || bound.equals("::") ? host() : bound;
    }

    @Override
    public String toString() {
      return name() + " (" + role().wireName() + ")";
    }
  }

  private final Path file;
  private final List<Instance> instances;
  private final DuetConfig shared;

  private Topology(Path file, List<Instance> instances, DuetConfig shared) {
    this.file = file;
    this.instances = List.copyOf(instances);
    this.shared = shared;
  }

  /** Whether a file's content names instances (else it is a configuration as any other). */
  static boolean describes(JsonObject file) {
    return file.containsKey(INSTANCES);
  }

  /**
   * Reads and checks a topology file's content.
   *
   * @throws InvalidConfigException with every problem of the file
   */
  static Topology parse(Path file, JsonObject json, DuetConfig.Layer defaults,
      DuetConfig.Layer env) {
    String source = DuetConfig.SOURCE_FILE + ": " + file;
    JsonObject settings = json.copy();
    Object raw = settings.remove(INSTANCES);
    if (!(raw instanceof JsonObject sections) || sections.isEmpty()) {
      throw new InvalidConfigException(List.of(new Problem(INSTANCES,
          "a map of instance names to their sections, at least one",
          Validator.found(INSTANCES, raw), source)));
    }
    List<Problem> problems = new ArrayList<>();
    // Unknown keys of the file's own settings are reported here, once, and left out, so that
    // every instance's configuration can still be checked.
    List<String> candidates = Stream.concat(Stream.of(INSTANCES),
        Settings.all().stream().map(Setting::key)).toList();
    JsonObject top = new JsonObject();
    JsonPaths.flatten(settings).forEach((key, value) -> Validator.unknownKey(key, value,
        candidates, source).ifPresentOrElse(problems::add, () -> JsonPaths.put(top, key, value)));
    List<TopologySection> read = sections.fieldNames().stream()
        .map(name -> TopologySection.read(name, sections.getValue(name), source)).toList();
    List<String> members = read.stream().map(TopologySection::member)
        .filter(Objects::nonNull).toList();
    List<Instance> instances = new ArrayList<>();
    for (TopologySection section : read) {
      problems.addAll(section.problems());
      DuetConfig.Layer layer = section.layer(top, members, file.toString());
      DuetConfig config = DuetConfig.mergeUnchecked(List.of(defaults, layer, env));
      List<Problem> values = Validator.valueProblems(config);
      List<Problem> found = values.isEmpty() ? Validator.conditionProblems(config) : values;
      found.stream().map(section::locate).forEach(problems::add);
      if (values.isEmpty() && section.role() != null) {
        // every value reads, so its ports can be checked even if a condition is not met
        instances.add(new Instance(section, layer, config));
      }
    }
    if (read.stream().allMatch(section -> section.role() != null)) {
      missingRoles(read, source).ifPresent(problems::add);
    }
    problems.addAll(TopologyPorts.problems(instances));
    problems.addAll(ExpertParallelNodes.problems(instances));
    if (!problems.isEmpty()) {
      // a problem of the file's own settings is found in every instance: report it once
      throw new InvalidConfigException(new ArrayList<>(new LinkedHashSet<>(problems)));
    }
    return new Topology(file, instances, shared(top, members, file, defaults, env));
  }

  private static Optional<Problem> missingRoles(List<TopologySection> sections, String source) {
    Set<Role> missing = EnumSet.allOf(Role.class);
    sections.forEach(section -> missing.remove(section.role()));
    return missing.isEmpty() ? Optional.empty() : Optional.of(new Problem(INSTANCES,
        "at least one proxy, one prefill and one decode instance", missing.stream()
            .map(role -> "no " + role.wireName() + " instance").collect(Collectors.joining(", ")),
        source));
  }

  private static DuetConfig shared(JsonObject top, List<String> members, Path file,
      DuetConfig.Layer defaults, DuetConfig.Layer env) {
    JsonObject values = top.copy();
    if (JsonPaths.get(values, Settings.CLUSTER_MEMBERS.key()) == null) {
      JsonPaths.put(values, Settings.CLUSTER_MEMBERS.key(), members);
    }
    return DuetConfig.merge(List.of(defaults, DuetConfig.Layer.ofFile(file.toString(), values),
        env));
  }

  /** The file, as given to {@link ConfigLoader}: absolute. */
  public Path file() {
    return file;
  }

  /** Every instance, in the order of the file. */
  public List<Instance> instances() {
    return instances;
  }

  /** The instance of that name, if the file has it. */
  public Optional<Instance> instance(String name) {
    return instances.stream().filter(instance -> instance.name().equals(name)).findFirst();
  }

  /**
   * The file's settings without any instance's section, over the defaults and under the
   * environment: what the whole cluster shares (its name, members, timing, log path).
   */
  public DuetConfig shared() {
    return shared;
  }

  /**
   * The instance a process started with {@code --instance name} is, which must be of the role
   * of the service started ({@code null}: any).
   *
   * @throws InvalidConfigException naming the file's instances when there is no such instance
   *     (or none was named), and both roles when the instance is of another role
   */
  Instance select(String name, Role role) {
    String names = instances.stream().map(Instance::name).collect(Collectors.joining(", "));
    String flag = DuetConfig.SOURCE_FLAG + ": " + ConfigFlags.INSTANCE_FLAG;
    if (name == null) {
      throw new InvalidConfigException(List.of(new Problem(ConfigFlags.INSTANCE_FLAG,
          "the name of one of the instances of " + file + ": " + names, "nothing", flag)));
    }
    Instance instance = instance(name).orElseThrow(() -> new InvalidConfigException(List.of(
        new Problem(ConfigFlags.INSTANCE_FLAG, "one of the instances of " + file + ": " + names,
            "'" + name + "'", flag))));
    if (role != null && instance.role() != role) {
      throw new InvalidConfigException(List.of(new Problem(
          instance.section().path() + "." + TopologySection.ROLE, role.wireName()
              + ", the role of the service started (" + name + " is a "
              + instance.role().wireName() + " instance: start it with the "
              + instance.role().wireName() + " service)", "'" + instance.role().wireName() + "'",
          DuetConfig.SOURCE_FILE + ": " + file)));
    }
    return instance;
  }
}
