package io.duet.engine.compute;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class ChunkPlanTest {

  @ParameterizedTest
  @CsvSource({
      "2, 2, '288,288,288'",
      "2, 8, '288,288,288'",
      "2, 2, '288,96,96'",
      "3, 2, '101,7,33'",
      "2, 8, '32000'",
      "1, 1, '5'",
      "4, 8, '3'",
  })
  void everyRowOfEveryMatrixIsInExactlyOnePieceAndChunksAreWholeRowGroups(int threads, int perThread,
      String rowList) {
    int[] rows = java.util.Arrays.stream(rowList.split(",")).mapToInt(Integer::parseInt)
        .toArray();
    ChunkPlan plan = ChunkPlan.of(threads, perThread, rows);
    int[][] covered = new int[rows.length][];
    for (int m = 0; m < rows.length; m++) {
      covered[m] = new int[rows[m]];
    }
    int total = java.util.Arrays.stream(rows).sum();
    assertTrue(plan.chunks() <= Math.max(1, threads * perThread) + 1, "too many chunks");
    for (int c = 0; c < plan.chunks(); c++) {
      int chunkRows = 0;
      assertTrue(plan.firstPiece(c) < plan.firstPiece(c + 1), "chunk " + c + " is empty");
      for (int p = plan.firstPiece(c); p < plan.firstPiece(c + 1); p++) {
        assertTrue(plan.from(p) < plan.to(p), "empty piece " + p);
        for (int r = plan.from(p); r < plan.to(p); r++) {
          covered[plan.matrix(p)][r]++;
        }
        chunkRows += plan.to(p) - plan.from(p);
      }
      boolean last = c == plan.chunks() - 1;
      assertTrue(last || chunkRows % ChunkPlan.ROW_GROUP == 0,
          "chunk " + c + " has " + chunkRows + " rows");
    }
    for (int m = 0; m < rows.length; m++) {
      for (int r = 0; r < rows[m]; r++) {
        assertEquals(1, covered[m][r], "matrix " + m + " row " + r);
      }
    }
    assertTrue(total > 0);
  }

  @ParameterizedTest
  @CsvSource({"2, 2, 4, 216", "2, 8, 16, 56"})
  void theQueryKeyValueRowsSplitIntoEqualChunksAcrossMatrixBoundaries(int threads,
      int perThread, int expectedChunks, int expectedRows) {
    ChunkPlan plan = ChunkPlan.of(threads, perThread, 288, 288, 288);
    assertEquals(expectedChunks, plan.chunks());
    for (int c = 0; c < plan.chunks(); c++) {
      int chunkRows = 0;
      for (int p = plan.firstPiece(c); p < plan.firstPiece(c + 1); p++) {
        chunkRows += plan.to(p) - plan.from(p);
      }
      boolean last = c == plan.chunks() - 1;
      assertEquals(last ? 864 - c * expectedRows : expectedRows, chunkRows, "chunk " + c);
    }
  }
}
