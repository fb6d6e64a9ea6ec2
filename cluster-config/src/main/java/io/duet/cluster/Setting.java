package io.duet.cluster;

import io.duet.cluster.impl.JsonPaths;
import io.duet.cluster.impl.types.RawValues;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.function.BiPredicate;
import java.util.function.Function;
import java.util.regex.Pattern;

/**
 * The one declaration of a configuration setting: its dotted key, {@link SettingType type},
 * default, description, and optionally the environment variable and the command-line flag that
 * set it. The defaults layer, validation, {@link DuetConfig#describe()}, the environment and
 * flag layers and the reference table of {@code docs/operations.md} are all derived from the
 * declarations, which live in {@link Settings}; read a value with {@link DuetConfig#get}.
 *
 * @param <T> the typed value
 */
public final class Setting<T> {

  private static final Pattern KEY = Pattern.compile("[a-z0-9]+(-[a-z0-9]+)*(\\.[a-z0-9]+(-[a-z0-9]+)*)*");

  /**
   * A named command-line flag: {@code --port PORT}, or for a boolean setting a switch without
   * a parameter, {@code --embedded} / {@code --no-embedded}.
   *
   * @param name the flag, with its dashes
   * @param paramLabel the parameter's name in the help, null for a switch
   */
  public record Flag(String name, String paramLabel) {

    /** Whether this is a {@code --name} / {@code --no-name} switch. */
    public boolean isSwitch() {
      return paramLabel == null;
    }

    /** The flag as the help shows it: {@code --port PORT} or {@code --[no-]embedded}. */
    @Override
    public String toString() {
      return isSwitch() ? "--[no-]" + name.substring(2) : name + " " + paramLabel;
    }
  }

  /**
   * A condition on the value that involves other settings, e.g. one timeout above another.
   *
   * @param description what is required, for the reference table
   * @param expected what is expected of the value in a given configuration, for a problem
   */
  private record Requirement<T>(String description, BiPredicate<DuetConfig, T> test,
      Function<DuetConfig, String> expected) {
  }

  private final String key;
  private final SettingType<T> type;
  private final Object rawDefault;
  private final T defaultValue;
  private final String description;
  private final String env;
  private final Flag flag;
  private final boolean secret;
  private final Function<DuetConfig, T> whenUnset;
  private final List<Requirement<T>> requirements;

  private Setting(Builder<T> builder) {
    key = builder.key;
    type = builder.type;
    description = Objects.requireNonNull(builder.description, () -> key + ": no description");
    env = builder.env;
    flag = builder.flag;
    secret = builder.secret;
    whenUnset = builder.whenUnset;
    requirements = List.copyOf(builder.requirements);
    rawDefault = builder.defaultValue == null ? null : type.encode(builder.defaultValue);
    defaultValue = isUnset(rawDefault) && whenUnset != null ? null : decodeDefault();
    if (flag != null && flag.isSwitch() != (type == SettingType.bool())) {
      throw new IllegalStateException(key + ": a switch flag is for boolean settings only, "
          + "and a boolean setting's flag is a switch");
    }
  }

  private T decodeDefault() {
    try {
      return type.decode(rawDefault);
    } catch (IllegalArgumentException e) {
      throw new IllegalStateException(key + ": the default " + rawDefault + " is not "
          + type.expected() + (rawDefault == null ? "; declare a default or a value when unset"
          : ""), e);
    }
  }

  /** Starts a declaration; {@link Settings} declares every setting. */
  static <T> Builder<T> builder(String key, SettingType<T> type) {
    return new Builder<>(key, type);
  }

  /** The dotted kebab-case key, as nested in a topology file: {@code decode.max-num-seqs}. */
  public String key() {
    return key;
  }

  public SettingType<T> type() {
    return type;
  }

  /**
   * What {@link DuetConfig#get} returns when no layer sets this setting; null when the value is
   * then derived from other settings (see the description).
   */
  public T defaultValue() {
    return defaultValue;
  }

  /** The default as a topology file would write it; null when unset. */
  public Object rawDefault() {
    return rawDefault;
  }

  /** What the setting does, one or two sentences. */
  public String description() {
    return description;
  }

  /** The environment variable that sets it, if any. */
  public Optional<String> env() {
    return Optional.ofNullable(env);
  }

  /** The named command-line flag that sets it, if any ({@code --set key=value} sets any). */
  public Optional<Flag> flag() {
    return Optional.ofNullable(flag);
  }

  /** Whether the value is a secret, printed masked. */
  public boolean secret() {
    return secret;
  }

  /** The allowed values: the type's range and the conditions on other settings. */
  public String range() {
    List<String> parts = new ArrayList<>();
    if (!type.range().isEmpty()) {
      parts.add(type.range());
    }
    requirements.forEach(requirement -> parts.add(requirement.description()));
    return String.join(", ", parts);
  }

  /**
   * {@code value} if the type allows it; for options objects whose values come from this
   * setting.
   *
   * @throws IllegalArgumentException naming the key and what is allowed
   */
  public T requireValid(T value) {
    try {
      type.decode(type.encode(value));
      return value;
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException(key + " must be " + type.expected() + ", got " + value,
          e);
    }
  }

  @Override
  public String toString() {
    return key;
  }

  /** The value of a valid raw value; derived from {@code config} when unset, if so declared. */
  T read(DuetConfig config, Object raw) {
    return isUnset(raw) && whenUnset != null ? whenUnset.apply(config) : type.decode(raw);
  }

  /** Whether {@code raw} passes the type; unset passes when the value is then derived. */
  boolean accepts(Object raw) {
    if (isUnset(raw) && whenUnset != null) {
      return true;
    }
    try {
      type.decode(raw);
      return true;
    } catch (IllegalArgumentException e) {
      return false;
    }
  }

  /**
   * What the conditions on other settings that {@code config}'s value does not meet expect of
   * it, e.g. "a value greater than cluster.heartbeat-millis".
   */
  List<String> unmetRequirements(DuetConfig config) {
    if (requirements.isEmpty()) {
      return List.of();
    }
    T value = config.get(this);
    return requirements.stream().filter(requirement -> !requirement.test().test(config, value))
        .map(requirement -> requirement.expected().apply(config)).toList();
  }

  static boolean isUnset(Object raw) {
    return RawValues.isUnset(raw);
  }

  /** A declaration under way; every setting needs a description. */
  static final class Builder<T> {
    private final String key;
    private final SettingType<T> type;
    private T defaultValue;
    private String description;
    private String env;
    private Flag flag;
    private boolean secret;
    private Function<DuetConfig, T> whenUnset;
    private final List<Requirement<T>> requirements = new ArrayList<>();

    private Builder(String key, SettingType<T> type) {
      if (!KEY.matcher(key).matches()) {
        throw new IllegalArgumentException("not a dotted kebab-case key: " + key);
      }
      this.key = key;
      this.type = Objects.requireNonNull(type, "type");
    }

    /** The default; without one the setting is unset by default. */
    Builder<T> defaultValue(T value) {
      defaultValue = value;
      return this;
    }

    Builder<T> description(String text) {
      description = text;
      return this;
    }

    /** The environment variable that sets it (empty or blank = not set). */
    Builder<T> env(String variable) {
      env = variable;
      return this;
    }

    /** The named flag that sets it, e.g. {@code flag("--port", "PORT")}. */
    Builder<T> flag(String name, String paramLabel) {
      flag = new Flag(name, Objects.requireNonNull(paramLabel, "paramLabel"));
      return this;
    }

    /** For a boolean setting: {@code --name} sets it true, {@code --no-name} false. */
    Builder<T> switchFlag(String name) {
      flag = new Flag(name, null);
      return this;
    }

    /** The value is a secret: masked wherever it is printed. */
    Builder<T> secret() {
      secret = true;
      return this;
    }

    /** The value when no layer sets it, derived from the rest of the configuration. */
    Builder<T> whenUnset(Function<DuetConfig, T> derive) {
      whenUnset = derive;
      return this;
    }

    /**
     * A condition on the value involving other settings, checked once every setting is valid
     * on its own; {@code description} says what is required, e.g. "greater than x.y".
     */
    Builder<T> requires(String description, BiPredicate<DuetConfig, T> test) {
      requirements.add(new Requirement<>(description, test, config -> "a value " + description));
      return this;
    }

    /**
     * The value must be the one {@code derive} makes of other settings; {@code formula} says
     * how, e.g. "decode.dp x decode.tp". A problem names the value this configuration needs.
     */
    Builder<T> requiresEqual(String formula, Function<DuetConfig, T> derive) {
      requirements.add(new Requirement<>("equal to " + formula,
          (config, value) -> value.equals(derive.apply(config)),
          config -> JsonPaths.text(type.encode(derive.apply(config))) + " (= " + formula + ")"));
      return this;
    }

    Setting<T> build() {
      return new Setting<>(this);
    }
  }
}
