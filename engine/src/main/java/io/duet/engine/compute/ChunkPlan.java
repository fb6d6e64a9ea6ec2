package io.duet.engine.compute;

/**
 * How the rows of one or more weight matrices that share an input are cut into parallel chunks.
 * The matrices' rows are taken as one range and cut into chunks of a multiple of
 * {@link #ROW_GROUP} rows (the kernels tile rows in eights); a chunk that crosses from one
 * matrix into the next holds a piece of each, so the query, key and value projections split as
 * evenly as one matrix does.
 */
public final class ChunkPlan {

  /** A chunk's rows are a multiple of this, but for the last chunk's. */
  static final int ROW_GROUP = 8;

  private final int[] firstPiece;
  private final int[] matrix;
  private final int[] from;
  private final int[] to;

  private ChunkPlan(int[] firstPiece, int[] matrix, int[] from, int[] to) {
    this.firstPiece = firstPiece;
    this.matrix = matrix;
    this.from = from;
    this.to = to;
  }

  /**
   * @param chunksPerThread how many chunks each thread's share of the rows is cut into: more
   *     lets a thread that finishes early take over more of another's work, at the cost of one
   *     kernel call per chunk
   */
  public static ChunkPlan of(int threads, int chunksPerThread, int... rowsPerMatrix) {
    int totalRows = 0;
    for (int rows : rowsPerMatrix) {
      totalRows += rows;
    }
    int target = Math.max(1, threads * chunksPerThread);
    int chunkRows = Math.max(1, (totalRows + target - 1) / target);
    chunkRows = (chunkRows + ROW_GROUP - 1) / ROW_GROUP * ROW_GROUP;
    int chunks = (totalRows + chunkRows - 1) / chunkRows;
    int maxPieces = chunks + rowsPerMatrix.length;
    int[] first = new int[chunks + 1];
    int[] m = new int[maxPieces];
    int[] f = new int[maxPieces];
    int[] t = new int[maxPieces];
    int pieces = 0;
    int mi = 0;
    int row = 0; // the next row to hand out, within matrix mi
    for (int c = 0; c < chunks; c++) {
      first[c] = pieces;
      int left = chunkRows;
      while (left > 0 && mi < rowsPerMatrix.length) {
        int take = Math.min(left, rowsPerMatrix[mi] - row);
        m[pieces] = mi;
        f[pieces] = row;
        t[pieces] = row + take;
        pieces++;
        left -= take;
        row += take;
        if (row == rowsPerMatrix[mi]) {
          mi++;
          row = 0;
        }
      }
    }
    first[chunks] = pieces;
    return new ChunkPlan(first, m, f, t);
  }

  public int chunks() {
    return firstPiece.length - 1;
  }

  /** The pieces of {@code chunk} are {@code [firstPiece(chunk), firstPiece(chunk + 1))}. */
  public int firstPiece(int chunk) {
    return firstPiece[chunk];
  }

  public int matrix(int piece) {
    return matrix[piece];
  }

  public int from(int piece) {
    return from[piece];
  }

  public int to(int piece) {
    return to[piece];
  }
}
