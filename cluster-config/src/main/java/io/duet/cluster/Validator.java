package io.duet.cluster;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.cluster.impl.EditDistance;
import java.util.ArrayList;
import java.util.List;
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

  static List<Problem> problems(DuetConfig config) {
    List<Problem> problems = new ArrayList<>();
    List<String> keys = Settings.all().stream().map(Setting::key).collect(Collectors.toList());
    config.leaves().forEach((path, value) -> {
      if (Settings.owner(path).isEmpty()) {
        problems.add(problem(config, path, "a known key (did you mean "
            + EditDistance.nearest(path, keys) + "?)", value));
      }
    });
    for (Setting<?> setting : Settings.all()) {
      Object raw = config.raw(setting.key());
      if (!setting.accepts(raw)) {
        problems.add(problem(config, setting.key(), setting.type().expected(), raw));
      }
    }
    if (problems.isEmpty()) {
      for (Setting<?> setting : Settings.all()) {
        for (String unmet : setting.unmetRequirements(config)) {
          problems.add(problem(config, setting.key(), "a value " + unmet,
              config.raw(setting.key())));
        }
      }
    }
    return problems;
  }

  private static Problem problem(DuetConfig config, String key, String expected, Object value) {
    String found = value == null ? "nothing" : "'" + DuetConfig.render(key, value) + "'";
    return new Problem(key, expected, found, config.origin(key));
  }
}
