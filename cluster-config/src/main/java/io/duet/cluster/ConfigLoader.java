package io.duet.cluster;

import io.duet.cluster.impl.JsonPaths;
import io.duet.cluster.impl.TopologyYamlProcessor;
import io.duet.contract.Role;
import io.vertx.config.ConfigRetriever;
import io.vertx.config.ConfigRetrieverOptions;
import io.vertx.config.ConfigStoreOptions;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Builds a {@link DuetConfig} from four layers, lowest to highest precedence; for every key the
 * highest layer that sets it wins (objects are merged key by key, lists replaced whole):
 *
 * <ol>
 *   <li><b>defaults</b>: the defaults declared in {@link Settings};</li>
 *   <li><b>file</b>: the YAML topology file named by {@code --config}, else by the
 *       {@code DUET_CONFIG} environment variable (none when neither is set; a file that is
 *       named but missing is an error). A file with {@code instances:} is a {@link Topology}:
 *       the layer is the section {@code --instance} names over the file's settings;</li>
 *   <li><b>env</b>: the environment variables that settings declare, e.g.
 *       {@code MODEL_PATH} for {@code model.path}; unset or empty variables are ignored;</li>
 *   <li><b>flag</b>: command-line {@link ConfigFlags} ({@code --set} first, then the named flags).</li>
 * </ol>
 *
 * The topology file is read with vertx-config's {@link ConfigRetriever} (YAML format) on the
 * Vert.x instance the caller passes, which can be a plain, non-clustered one: the cluster
 * settings are part of what is loaded. The environment is a parameter so that tests pass their
 * own map; production passes {@code System.getenv()}.
 */
public final class ConfigLoader {

  /** Environment variable naming the topology file when {@code --config} is not given. */
  public static final String CONFIG_ENV = "DUET_CONFIG";

  private ConfigLoader() {
  }

  /**
   * Loads the configuration; {@code instance.id} stays unset unless a layer sets it (see
   * {@link DuetConfig#forRole}). Fails with an {@link InvalidConfigException} listing every
   * problem (each with its key and source) when the configuration does not match the
   * declarations, and with a message naming the path when the topology file is missing or
   * unreadable. A file with {@code instances:} is a {@link Topology}: it is checked whole, and
   * its file layer is the section {@code --instance} names over the file's settings.
   */
  public static Future<DuetConfig> load(Vertx vertx, ConfigFlags flags, Map<String, String> env) {
    return merge(vertx, null, flags, env);
  }

  /**
   * {@link #load(Vertx, ConfigFlags, Map)} for a service of {@code role}, then
   * {@link DuetConfig#forRole(Role)}. The instance {@code --instance} names must be of that role.
   */
  public static Future<DuetConfig> load(Vertx vertx, Role role, ConfigFlags flags,
      Map<String, String> env) {
    Objects.requireNonNull(role, "role");
    return merge(vertx, role, flags, env).map(config -> config.forRole(role));
  }

  /**
   * Reads and checks a topology file (one with {@code instances:}) with the environment
   * {@code env}, as every process started from it will read it.
   *
   * @return the topology; failed with an {@link InvalidConfigException} listing every problem
   *     of the file, or with a message naming the path when the file is missing, unreadable or
   *     names no instances
   */
  public static Future<Topology> loadTopology(Vertx vertx, Path file, Map<String, String> env) {
    Objects.requireNonNull(vertx, "vertx");
    Objects.requireNonNull(env, "env");
    String path = absolute(file);
    return readFile(vertx, path, "the command line").map(json -> {
      if (!Topology.describes(json)) {
        throw new IllegalArgumentException("config file " + path + " names no instances: a "
            + "topology file has an '" + Topology.INSTANCES + ":' section");
      }
      return Topology.parse(Path.of(path), json, DuetConfig.defaultsLayer(), envLayer(env));
    });
  }

  /** The layers merged, the file's for an instance of {@code role} (null: any). */
  private static Future<DuetConfig> merge(Vertx vertx, Role role, ConfigFlags flags,
      Map<String, String> env) {
    Objects.requireNonNull(vertx, "vertx");
    Objects.requireNonNull(flags, "flags");
    Objects.requireNonNull(env, "env");
    DuetConfig.Layer defaults;
    DuetConfig.Layer envLayer;
    DuetConfig.Layer flagLayer;
    try {
      defaults = DuetConfig.defaultsLayer();
      envLayer = envLayer(env);
      flagLayer = flags.layer();
    } catch (RuntimeException e) {
      return Future.failedFuture(e);
    }
    return fileLayer(vertx, role, flags, env, defaults, envLayer).map(fileLayer ->
        DuetConfig.merge(List.of(defaults, fileLayer, envLayer, flagLayer)));
  }

  /** The variables that settings declare; unset or blank ones are ignored. */
  private static DuetConfig.Layer envLayer(Map<String, String> env) {
    JsonObject values = new JsonObject();
    Map<String, String> details = new LinkedHashMap<>();
    for (Setting<?> setting : Settings.all()) {
      setting.env().ifPresent(variable -> {
        String text = env.get(variable);
        if (text != null && !text.isBlank()) {
          JsonPaths.put(values, setting.key(), setting.type().fromText(text.trim()));
          details.put(setting.key(), variable);
        }
      });
    }
    return new DuetConfig.Layer(DuetConfig.SOURCE_ENV, values, details);
  }

  /**
   * The file layer: the file's values, or for a topology file the section of the instance
   * {@code --instance} names, which must be of {@code role} (null: any).
   */
  private static Future<DuetConfig.Layer> fileLayer(Vertx vertx, Role role, ConfigFlags flags,
      Map<String, String> env, DuetConfig.Layer defaults, DuetConfig.Layer envLayer) {
    String path;
    String given;
    if (flags.configFile().isPresent()) {
      path = absolute(flags.configFile().get());
      given = "--config";
    } else if (env.get(CONFIG_ENV) != null && !env.get(CONFIG_ENV).isBlank()) {
      path = absolute(Path.of(env.get(CONFIG_ENV).trim()));
      given = CONFIG_ENV;
    } else {
      // mapped, so that a problem fails the future
      return Future.succeededFuture(new JsonObject())
          .map(none -> instanceOfNoTopology(flags, DuetConfig.Layer.ofFile("", none)));
    }
    return readFile(vertx, path, given).map(json -> {
      if (!Topology.describes(json)) {
        return instanceOfNoTopology(flags, DuetConfig.Layer.ofFile(path, json));
      }
      return Topology.parse(Path.of(path), json, defaults, envLayer)
          .select(flags.instance().orElse(null), role).layer();
    });
  }

  /** {@code layer}, unless {@code --instance} names an instance, which only a topology has. */
  private static DuetConfig.Layer instanceOfNoTopology(ConfigFlags flags,
      DuetConfig.Layer layer) {
    flags.instance().ifPresent(name -> {
      throw new InvalidConfigException(List.of(new InvalidConfigException.Problem(
          ConfigFlags.INSTANCE_FLAG, "a --config topology file with an '" + Topology.INSTANCES
              + ":' section", "'" + name + "'",
          DuetConfig.SOURCE_FLAG + ": " + ConfigFlags.INSTANCE_FLAG)));
    });
    return layer;
  }

  /** Absolute, or Vert.x's file resolver would fall back to a classpath resource of the name. */
  private static String absolute(Path file) {
    return file.toAbsolutePath().normalize().toString();
  }

  /** The YAML content of a file; an empty object for a file of comments only. */
  private static Future<JsonObject> readFile(Vertx vertx, String path, String given) {
    return vertx.fileSystem().exists(path).compose(exists -> {
      if (!exists) {
        return Future.failedFuture(new IllegalArgumentException(
            "config file " + path + " (given by " + given + ") does not exist"));
      }
      ConfigRetriever retriever = ConfigRetriever.create(vertx, new ConfigRetrieverOptions()
          .setScanPeriod(-1)
          .addStore(new ConfigStoreOptions().setType("file").setFormat(TopologyYamlProcessor.FORMAT)
              .setConfig(new JsonObject().put("path", path))));
      return retriever.getConfig()
          .eventually(retriever::close)
          .recover(error -> Future.failedFuture(new IllegalArgumentException(
              "cannot read config file " + path + " (given by " + given + "): "
                  + error.getMessage(), error)))
          .map(json -> json == null ? new JsonObject() : json);
    });
  }
}
