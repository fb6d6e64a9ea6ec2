package io.duet.cluster;

import io.duet.cluster.impl.JsonPaths;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.IModelTransformer;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.ISetter;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;

/**
 * The configuration flags every Duet command shares; add them to a picocli command with
 * {@code @Mixin ConfigFlags config;}. Flags are the highest layer of the configuration (see
 * {@link ConfigLoader}); a flag not given leaves the lower layers' value in place.
 *
 * <p>Besides {@code --config FILE} (and {@code --instance NAME}, which picks a section of a
 * topology file, see {@link Topology}), there is one named flag per setting that declares one
 * ({@code --port}, {@code --model}, {@code --[no-]embedded}, ...), made from the declarations in
 * {@link Settings}, and {@code --set key.path=value}, which sets any key, e.g.
 * {@code --set decode.max-num-seqs=64}; its value is read as the setting's type reads text, and
 * {@code null} unsets the key. The named flags are applied after all {@code --set}s, so
 * {@code --port 7001} wins over {@code --set proxy.port=7002}.
 *
 * <p>A command that mixes these flags in must not declare a model transformer of its own:
 * picocli gives the mixin's to the command, and that is how the named flags are added.
 */
@Command(modelTransformer = ConfigFlags.NamedFlags.class)
public class ConfigFlags {

  @Option(names = "--config", paramLabel = "FILE",
      description = "YAML topology file (default: $DUET_CONFIG, else none).")
  Path config;

  /** The flag that names the instance of a topology file a process is. */
  public static final String INSTANCE_FLAG = "--instance";

  @Option(names = INSTANCE_FLAG, paramLabel = "NAME",
      description = "The instance of the --config topology this process is: its section of the "
          + "file's instances: overlays the file's settings.")
  String instance;

  @Option(names = "--set", paramLabel = "KEY=VALUE",
      description = "Set any configuration key, e.g. --set decode.max-num-seqs=64 (repeatable).")
  Map<String, String> set = new LinkedHashMap<>();

  /** The named flags given, by setting, as text. */
  private final Map<Setting<?>, String> named = new LinkedHashMap<>();

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

  /** The {@code --instance} name, if given. */
  public Optional<String> instance() {
    return Optional.ofNullable(instance);
  }

  /** The overlay the given flags make, as nested JSON (empty when no flag was given). */
  public JsonObject toJson() {
    return layer().values();
  }

  DuetConfig.Layer layer() {
    JsonObject values = new JsonObject();
    Map<String, String> details = new LinkedHashMap<>();
    set.forEach((key, text) -> {
      String path = key.trim();
      String value = text.trim();
      JsonPaths.put(values, path, value.equals("null") ? null
          : Settings.find(path).map(setting -> setting.type().fromText(value)).orElse(value));
      details.put(path, "--set " + path);
    });
    named.forEach((setting, text) -> {
      JsonPaths.put(values, setting.key(), setting.type().fromText(text.trim()));
      details.put(setting.key(), setting.flag().orElseThrow().name());
    });
    return new DuetConfig.Layer(DuetConfig.SOURCE_FLAG, values, details);
  }

  /**
   * Adds an option for every setting that declares a flag, to the command these flags are
   * mixed into (or to a {@link ConfigFlags} parsed alone). Each option keeps its text for
   * {@link #layer()}; the setting's type reads it there, so a bad value is reported with all
   * the other problems of the configuration.
   */
  static final class NamedFlags implements IModelTransformer {

    @Override
    public CommandSpec transform(CommandSpec command) {
      ConfigFlags flags = command.userObject() instanceof ConfigFlags own ? own
          : command.mixins().values().stream().map(CommandSpec::userObject)
              .filter(ConfigFlags.class::isInstance).map(ConfigFlags.class::cast).findFirst()
              .orElseThrow(() -> new IllegalStateException("no ConfigFlags mixin in "
                  + command.name()));
      for (Setting<?> setting : Settings.all()) {
        setting.flag().ifPresent(flag -> command.addOption(option(flags, setting, flag)));
      }
      return command;
    }

    private static OptionSpec option(ConfigFlags flags, Setting<?> setting, Setting.Flag flag) {
      String description = setting.description() + " (" + setting.key() + ")";
      OptionSpec.Builder option = OptionSpec.builder(flag.name()).description(description)
          .setter(new ISetter() {
            @Override
            public <T> T set(T value) {
              // picocli also sets every option's initial value, null: not a flag given
              if (value != null) {
                flags.named.put(setting, value.toString());
              }
              return null;
            }
          });
      return flag.isSwitch()
          ? option.negatable(true).arity("0").type(Boolean.class).build()
          : option.paramLabel(flag.paramLabel()).type(String.class).build();
    }
  }
}
