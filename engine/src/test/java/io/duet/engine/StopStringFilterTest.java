package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.duet.engine.StopStringFilter.Result;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class StopStringFilterTest {

  private static Result emit(String text) {
    return new Result(text, false);
  }

  private static Result stop(String text) {
    return new Result(text, true);
  }

  @Test
  void passesEverythingThroughWithoutStopStrings() {
    StopStringFilter filter = new StopStringFilter(List.of());
    assertEquals(emit("Hello"), filter.accept("Hello"));
    assertEquals(emit(""), filter.accept(""));
    assertEquals(emit(" world"), filter.accept(" world"));
    assertEquals("", filter.flush());
  }

  @Test
  void holdsBackAPossibleStartUntilItIsDisambiguated() {
    StopStringFilter filter = new StopStringFilter(List.of("STOP"));
    assertEquals(emit("go "), filter.accept("go ST"));
    assertEquals(emit("STAR"), filter.accept("AR"));
    assertEquals(emit(""), filter.accept("S"));
    assertEquals(emit("S"), filter.accept("S"));
  }

  @Test
  void truncatesBeforeTheStopStringAndStaysStopped() {
    StopStringFilter filter = new StopStringFilter(List.of("STOP"));
    assertEquals(stop("abc "), filter.accept("abc STOP def"));
    assertEquals(stop(""), filter.accept("more"));
    assertEquals("", filter.flush());
  }

  @Test
  void findsAStopStringSplitAcrossThreeDeltas() {
    StopStringFilter filter = new StopStringFilter(List.of("<|end|>"));
    assertEquals(emit("foo "), filter.accept("foo <|"));
    assertEquals(emit(""), filter.accept("en"));
    assertEquals(stop(""), filter.accept("d|> bar"));
  }

  @Test
  void releasesTheHeldPartOfAnOverlappingFalseStart() {
    StopStringFilter filter = new StopStringFilter(List.of("aab"));
    assertEquals(emit(""), filter.accept("aa"));
    assertEquals(stop("a"), filter.accept("ab"));
  }

  @Test
  void handlesSeveralStopStrings() {
    StopStringFilter filter = new StopStringFilter(List.of("\n\n", "END"));
    assertEquals(emit("a"), filter.accept("a\n"));
    assertEquals(emit("\nb"), filter.accept("b"));
    assertEquals(emit(" "), filter.accept(" E"));
    assertEquals(stop("EE"), filter.accept("E\n\nEND"));
  }

  @Test
  void stopStringThatEndsFirstWins() {
    StopStringFilter filter = new StopStringFilter(List.of("xyz12", "yz1"));
    assertEquals(stop("ax"), filter.accept("axyz12"));
  }

  @Test
  void resultDoesNotDependOnHowTextIsSplit() {
    List<String> stops = List.of("xyz12", "yz1", "<|im_end|>", "\n\n");
    String text = "some text <|im_ a xyz1 more\n then yz12 and <|im_end|> tail";
    String expected = new StopStringFilter(stops).accept(text).text();
    assertEquals("some text <|im_ a x", expected);
    Random random = new Random(7);
    for (int round = 0; round < 200; round++) {
      StopStringFilter filter = new StopStringFilter(stops);
      StringBuilder out = new StringBuilder();
      boolean stopped = false;
      for (int start = 0; start < text.length() && !stopped; ) {
        int end = Math.min(text.length(), start + random.nextInt(5));
        Result result = filter.accept(text.substring(start, end));
        out.append(result.text());
        stopped = result.stopped();
        start = end;
      }
      assertEquals(true, stopped, "round " + round);
      assertEquals(expected, out.toString(), "round " + round);
    }
  }

  @Test
  void flushReleasesHeldTextWhenGenerationEndsOtherwise() {
    StopStringFilter filter = new StopStringFilter(List.of("STOP"));
    assertEquals(emit("go "), filter.accept("go ST"));
    assertEquals("ST", filter.flush());
    assertEquals("", filter.flush());
  }

  @Test
  void rejectsEmptyStopString() {
    assertThrows(IllegalArgumentException.class, () -> new StopStringFilter(List.of("ok", "")));
  }
}
