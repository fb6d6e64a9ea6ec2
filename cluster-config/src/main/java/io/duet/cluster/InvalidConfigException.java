package io.duet.cluster;

import java.util.List;
import java.util.stream.Collectors;

/**
 * A configuration that does not match the declarations of {@link Settings}: every problem found,
 * all at once, each naming the key, what is expected, what was found and where it came from.
 */
public final class InvalidConfigException extends IllegalArgumentException {

  private static final long serialVersionUID = 1L;

  /**
   * One problem.
   *
   * @param key the dotted key
   * @param expected what a valid value is, e.g. "an integer in 0..65535"
   * @param found the value found, quoted and with secrets masked, or "nothing" when unset
   * @param source the layer that set it, with the file, variable or flag when there is one
   */
  public record Problem(String key, String expected, String found, String source) {

    @Override
    public String toString() {
      return key + ": expected " + expected + ", found " + found + " (" + source + ")";
    }
  }

  private final List<Problem> problems;

  public InvalidConfigException(List<Problem> problems) {
    super(message(problems));
    this.problems = List.copyOf(problems);
  }

  /** The problems, in the order they were found: unknown keys, values, then conditions. */
  public List<Problem> problems() {
    return problems;
  }

  private static String message(List<Problem> problems) {
    return problems.size() == 1 ? "invalid configuration: " + problems.get(0)
        : "invalid configuration, " + problems.size() + " problems:" + problems.stream()
            .map(problem -> "\n  " + problem).collect(Collectors.joining());
  }
}
