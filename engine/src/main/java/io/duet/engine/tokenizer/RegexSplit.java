package io.duet.engine.tokenizer;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Hugging Face's {@code Split} pre-tokenizer: the matches of a pattern and the text between them
 * are cut apart, then kept, dropped or joined as its {@code behavior} says.
 */
final class RegexSplit implements PreTokenizer {

  /** What becomes of the matches ({@code SplitDelimiterBehavior}). */
  enum Behavior { REMOVED, ISOLATED, MERGED_WITH_PREVIOUS, MERGED_WITH_NEXT, CONTIGUOUS }

  private record Segment(int start, int end, boolean match) {
  }

  private final Pattern pattern;
  private final Behavior behavior;
  private final boolean invert;

  RegexSplit(Pattern pattern, Behavior behavior, boolean invert) {
    this.pattern = pattern;
    this.behavior = behavior;
    this.invert = invert;
  }

  @Override
  public void split(String piece, Consumer<String> out) {
    List<Segment> kept = combine(segments(piece));
    for (Segment segment : kept) {
      if (segment.end() > segment.start()) {
        out.accept(piece.substring(segment.start(), segment.end()));
      }
    }
  }

  /** The matches and the text between them, covering the piece; {@code invert} swaps the two. */
  private List<Segment> segments(String piece) {
    List<Segment> segments = new ArrayList<>();
    Matcher matcher = pattern.matcher(piece);
    int previousEnd = 0;
    while (matcher.find()) {
      if (matcher.end() == matcher.start()) {
        continue;
      }
      if (matcher.start() > previousEnd) {
        segments.add(new Segment(previousEnd, matcher.start(), invert));
      }
      segments.add(new Segment(matcher.start(), matcher.end(), !invert));
      previousEnd = matcher.end();
    }
    if (previousEnd < piece.length()) {
      segments.add(new Segment(previousEnd, piece.length(), invert));
    }
    return segments;
  }

  private List<Segment> combine(List<Segment> segments) {
    List<Segment> out = new ArrayList<>();
    switch (behavior) {
      case ISOLATED -> out.addAll(segments);
      case REMOVED -> segments.stream().filter(s -> !s.match()).forEach(out::add);
      case MERGED_WITH_PREVIOUS -> {
        boolean previousMatch = false;
        for (Segment s : segments) {
          if (s.match() && !previousMatch && !out.isEmpty()) {
            Segment last = out.remove(out.size() - 1);
            out.add(new Segment(last.start(), s.end(), false));
          } else {
            out.add(s);
          }
          previousMatch = s.match();
        }
      }
      case MERGED_WITH_NEXT -> {
        boolean nextMatch = false;
        for (int i = segments.size() - 1; i >= 0; i--) {
          Segment s = segments.get(i);
          if (s.match() && !nextMatch && !out.isEmpty()) {
            Segment first = out.remove(out.size() - 1);
            out.add(new Segment(s.start(), first.end(), false));
          } else {
            out.add(s);
          }
          nextMatch = s.match();
        }
        Collections.reverse(out);
      }
      case CONTIGUOUS -> {
        boolean previousMatch = false;
        for (Segment s : segments) {
          if (s.match() && previousMatch) {
            Segment last = out.remove(out.size() - 1);
            out.add(new Segment(last.start(), s.end(), true));
          } else {
            out.add(s);
          }
          previousMatch = s.match();
        }
      }
    }
    return out;
  }
}
