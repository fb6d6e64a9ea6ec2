package io.duet.cluster;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.cluster.impl.EditDistance;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * Checks a whole merged configuration against the declarations of {@link Settings} and lists
 * every problem: keys no setting declares (with the nearest declared key), values their type
 * does not allow, and then, once every value is valid on its own, the conditions between
 * settings. Entries of a map setting are not checked.
 */
final class Validator {

  private Validator() {
  }

  /** Every problem of {@code config}: {@link #valueProblems}, else {@link #conditionProblems}. */
  static List<Problem> problems(DuetConfig config) {
    List<Problem> values = valueProblems(config);
    return values.isEmpty() ? conditionProblems(config) : values;
  }

  /** Keys no setting declares, and values their type does not allow. */
  static List<Problem> valueProblems(DuetConfig config) {
    List<Problem> problems = new ArrayList<>();
    List<String> keys = Settings.all().stream().map(Setting::key).collect(Collectors.toList());
    config.leaves().forEach((path, value) ->
        unknownKey(path, value, keys, config.origin(path)).ifPresent(problems::add));
    for (Setting<?> setting : Settings.all()) {
      Object raw = config.raw(setting.key());
      if (!setting.accepts(raw)) {
        problems.add(problem(config, setting.key(), setting.type().expected(), raw));
      }
    }
    return problems;
  }

  /** The conditions between settings that are not met; only for valid values. */
  static List<Problem> conditionProblems(DuetConfig config) {
    List<Problem> problems = new ArrayList<>();
    for (Setting<?> setting : Settings.all()) {
      for (String expected : setting.unmetRequirements(config)) {
        problems.add(problem(config, setting.key(), expected, config.raw(setting.key())));
      }
    }
    return problems;
  }

  /**
   * The problem of a key no setting declares, which suggests the nearest of {@code candidates};
   * empty for a key a setting declares (or holds, as an entry of a map).
   */
  static Optional<Problem> unknownKey(String path, Object value, Collection<String> candidates,
      String source) {
    return Settings.owner(path).isPresent() ? Optional.empty() : Optional.of(new Problem(path,
        "a known key (did you mean " + EditDistance.nearest(path, candidates) + "?)",
        found(path, value), source));
  }

  private static Problem problem(DuetConfig config, String key, String expected, Object value) {
    return new Problem(key, expected, found(key, value), config.origin(key));
  }

  /** A value as a problem shows it: quoted, secrets masked, or "nothing" when unset. */
  static String found(String key, Object value) {
    return value == null ? "nothing" : "'" + DuetConfig.render(key, value) + "'";
  }
}
