package io.duet.engine;

import java.util.List;

/**
 * Applies stop strings to streamed text, as the OpenAI API and vLLM do: generation ends at the
 * first stop string, and neither the stop string nor anything after it is returned.
 *
 * <p>Text that could be the start of a stop string is held back until the following text shows
 * whether it is one. The stop string that ends first in the text wins (on a tie, the one starting
 * first), so the result does not depend on how the text was split into deltas.
 *
 * <p>Not thread-safe: one instance per sequence.
 */
public final class StopStringFilter {

  /**
   * The outcome of one delta.
   *
   * @param text text that is safe to send now (possibly empty)
   * @param stopped whether a stop string has been reached; no further text will be released
   */
  public record Result(String text, boolean stopped) {}

  private final List<String> stops;
  private final StringBuilder held = new StringBuilder();
  private boolean stopped;

  /**
   * @param stops the stop strings, possibly none
   * @throws IllegalArgumentException if a stop string is empty (it would match before any text)
   */
  public StopStringFilter(List<String> stops) {
    for (String stop : stops) {
      if (stop.isEmpty()) {
        throw new IllegalArgumentException("stop strings must not be empty");
      }
    }
    this.stops = List.copyOf(stops);
  }

  /**
   * Adds the next piece of generated text. Once a stop string has been seen every later call
   * returns empty text and {@code stopped}.
   */
  public Result accept(String delta) {
    if (stopped) {
      return new Result("", true);
    }
    held.append(delta);
    int stopAt = firstStop();
    if (stopAt >= 0) {
      stopped = true;
      String text = held.substring(0, stopAt);
      held.setLength(0);
      return new Result(text, true);
    }
    int release = held.length() - longestStopPrefixSuffix();
    String text = held.substring(0, release);
    held.delete(0, release);
    return new Result(text, false);
  }

  /**
   * Ends the text for another reason than a stop string (length limit, EOS): returns the text
   * still held back, which turned out not to be a stop string. Empty once stopped.
   */
  public String flush() {
    String text = held.toString();
    held.setLength(0);
    return text;
  }

  /** Start of the stop string that ends first in the held text, or -1 if none occurs. */
  private int firstStop() {
    for (int end = 1; end <= held.length(); end++) {
      int start = -1;
      for (String stop : stops) {
        int candidate = end - stop.length();
        if (candidate >= 0
            && (start == -1 || candidate < start)
            && heldMatches(stop, candidate, stop.length())) {
          start = candidate;
        }
      }
      if (start >= 0) {
        return start;
      }
    }
    return -1;
  }

  /** Length of the longest end of the held text that is a proper prefix of some stop string. */
  private int longestStopPrefixSuffix() {
    int longest = 0;
    for (String stop : stops) {
      for (int length = Math.min(stop.length() - 1, held.length()); length > longest; length--) {
        if (heldMatches(stop, held.length() - length, length)) {
          longest = length;
          break;
        }
      }
    }
    return longest;
  }

  /** Whether the held text at {@code offset} equals the first {@code length} chars of stop. */
  private boolean heldMatches(String stop, int offset, int length) {
    for (int i = 0; i < length; i++) {
      if (held.charAt(offset + i) != stop.charAt(i)) {
        return false;
      }
    }
    return true;
  }
}
