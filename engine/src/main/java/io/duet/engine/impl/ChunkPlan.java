package io.duet.engine.impl;

/**
 * How the rows of one or more weight matrices that share an input are cut into parallel chunks.
 * Chunks never straddle two matrices, there are several per thread so that a thread that
 * finishes early takes more work, and they hold an even number of rows where the matrix allows.
 */
final class ChunkPlan {

  private static final int CHUNKS_PER_THREAD = 8;

  private final int[] matrix;
  private final int[] from;
  private final int[] to;

  private ChunkPlan(int[] matrix, int[] from, int[] to) {
    this.matrix = matrix;
    this.from = from;
    this.to = to;
  }

  static ChunkPlan of(int threads, int... rowsPerMatrix) {
    int totalRows = 0;
    for (int rows : rowsPerMatrix) {
      totalRows += rows;
    }
    int target = Math.max(1, threads * CHUNKS_PER_THREAD);
    int chunkRows = Math.max(1, (totalRows + target - 1) / target);
    chunkRows += chunkRows & 1; // the kernels tile rows in pairs

    int count = 0;
    for (int rows : rowsPerMatrix) {
      count += (rows + chunkRows - 1) / chunkRows;
    }
    int[] m = new int[count];
    int[] f = new int[count];
    int[] t = new int[count];
    int i = 0;
    for (int mi = 0; mi < rowsPerMatrix.length; mi++) {
      for (int start = 0; start < rowsPerMatrix[mi]; start += chunkRows) {
        m[i] = mi;
        f[i] = start;
        t[i] = Math.min(rowsPerMatrix[mi], start + chunkRows);
        i++;
      }
    }
    return new ChunkPlan(m, f, t);
  }

  int chunks() {
    return matrix.length;
  }

  int matrix(int chunk) {
    return matrix[chunk];
  }

  int from(int chunk) {
    return from[chunk];
  }

  int to(int chunk) {
    return to[chunk];
  }
}
