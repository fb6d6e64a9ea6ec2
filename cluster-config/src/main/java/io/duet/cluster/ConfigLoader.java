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
 *       named but missing is an error);</li>
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
   * unreadable.
   */
  public static Future<DuetConfig> load(Vertx vertx, ConfigFlags flags, Map<String, String> env) {
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
    return fileLayer(vertx, flags, env).compose(fileLayer -> {
      try {
        return Future.succeededFuture(
            DuetConfig.merge(List.of(defaults, fileLayer, envLayer, flagLayer)));
      } catch (IllegalArgumentException e) {
        return Future.failedFuture(e);
      }
    });
  }

  /** {@link #load(Vertx, ConfigFlags, Map)}, then {@link DuetConfig#forRole(Role)}. */
  public static Future<DuetConfig> load(Vertx vertx, Role role, ConfigFlags flags,
      Map<String, String> env) {
    Objects.requireNonNull(role, "role");
    return load(vertx, flags, env).map(config -> config.forRole(role));
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

  private static Future<DuetConfig.Layer> fileLayer(Vertx vertx, ConfigFlags flags,
      Map<String, String> env) {
    Path file;
    String given;
    if (flags.configFile().isPresent()) {
      file = flags.configFile().get();
      given = "--config";
    } else if (env.get(CONFIG_ENV) != null && !env.get(CONFIG_ENV).isBlank()) {
      file = Path.of(env.get(CONFIG_ENV).trim());
      given = CONFIG_ENV;
    } else {
      return Future.succeededFuture(
          new DuetConfig.Layer(DuetConfig.SOURCE_FILE, new JsonObject(), Map.of()));
    }
    // absolute, or Vert.x's file resolver would fall back to a classpath resource of that name
    String path = file.toAbsolutePath().normalize().toString();
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
          .map(json -> {
            JsonObject values = json == null ? new JsonObject() : json;
            Map<String, String> details = new LinkedHashMap<>();
            JsonPaths.flatten(values).keySet().forEach(key -> details.put(key, path));
            return new DuetConfig.Layer(DuetConfig.SOURCE_FILE, values, details);
          });
    });
  }
}
