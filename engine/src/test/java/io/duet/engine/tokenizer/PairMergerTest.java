package io.duet.engine.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.duet.engine.TestFiles;
import java.io.IOException;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** {@link PairMerger} makes the merges of the quadratic textbook loop, in the same order. */
class PairMergerTest {

  @Test
  void equalsTheQuadraticLoopOnRandomRules() {
    Random random = new Random(7);
    for (int trial = 0; trial < 2000; trial++) {
      int alphabet = 2 + random.nextInt(4);
      // Few priorities, so that ties (decided by position) are common.
      int priorities = 1 + random.nextInt(4);
      PairTable table = new PairTable(64);
      int nextSymbol = alphabet;
      for (int rule = 0; rule < 3 + random.nextInt(20); rule++) {
        int left = random.nextInt(nextSymbol);
        int right = random.nextInt(nextSymbol);
        table.put(left, right, PairMerger.merge(random.nextInt(priorities) - 1, nextSymbol++));
      }
      int[] symbols = random.ints(random.nextInt(40), 0, alphabet).toArray();
      int[] expected = symbols.clone();
      int expectedCount = QuadraticMerger.mergeAll(expected, expected.length, table::get);
      int[] actual = symbols.clone();
      int actualCount = PairMerger.mergeAll(actual, actual.length, table::get);
      assertArrayEquals(Arrays.copyOf(expected, expectedCount),
          Arrays.copyOf(actual, actualCount), "trial " + trial + ": " + Arrays.toString(symbols));
    }
  }

  @Test
  void repeatedPairsMergeFromTheLeft() {
    PairTable table = new PairTable(4);
    table.put(0, 0, PairMerger.merge(0, 1));
    int[] symbols = {0, 0, 0};
    assertEquals(2, PairMerger.mergeAll(symbols, 3, table::get));
    assertArrayEquals(new int[] {1, 0}, Arrays.copyOf(symbols, 2));
  }

  @Test
  void deepSeekTokenizerEqualsTheQuadraticLoopOnRandomText() throws IOException {
    HfTokenizer tokenizer = HfTokenizer.open(
        TestFiles.shared(HfTokenizerFixtureTest.DEEPSEEK_V3.toString()));
    HfTokenizer reference = tokenizer.withMerger(QuadraticMerger::mergeAll);
    Random random = new Random(11);
    String[] atoms = {"a", "b", "ab", "the", " ", "  ", "\n", "深", "度", "学习", "1", "23",
        "😀", "é", "!", "'s", "<｜User｜>", "ä", "ü", "\t", "ing", "tion", "数据"};
    for (int trial = 0; trial < 300; trial++) {
      StringBuilder text = new StringBuilder();
      for (int i = random.nextInt(60); i > 0; i--) {
        text.append(atoms[random.nextInt(atoms.length)]);
      }
      assertArrayEquals(reference.encode(text.toString(), false),
          tokenizer.encode(text.toString(), false), text.toString());
    }
  }
}
