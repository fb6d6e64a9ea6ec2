package io.duet.engine.spi;

/**
 * The token rows of one forward pass, as the engine assembled them: any mix of prompt chunks
 * (many rows of one sequence) and decode tokens (one row each). Valid during
 * {@link ForwardPass#forward} only; the arrays are the engine's and reused.
 */
public final class ForwardBatch {

  private final int[] tokens;
  private final int[] positions;
  private final int[] rowSequence;
  private final int[][] blockTables;
  private final int[] logitSourceRows;
  private int rowCount;
  private int sequenceCount;
  private int logitRowCount;
  private java.util.function.IntConsumer layerListener = layer -> { };

  /** Room for {@code maxTokens} rows and {@code maxLogitRows} rows of logits. */
  public ForwardBatch(int maxTokens, int maxLogitRows) {
    this.tokens = new int[maxTokens];
    this.positions = new int[maxTokens];
    this.rowSequence = new int[maxTokens];
    this.blockTables = new int[maxTokens][];
    this.logitSourceRows = new int[maxLogitRows];
  }

  public int rowCount() {
    return rowCount;
  }

  /** The token of row {@code row}. */
  public int token(int row) {
    return tokens[row];
  }

  /** Its position in its sequence. */
  public int position(int row) {
    return positions[row];
  }

  /** The block table of its sequence: block {@code i} holds positions {@code [i*B, (i+1)*B)}. */
  public int[] blockTable(int row) {
    return blockTables[rowSequence[row]];
  }

  /** Rows whose logits are wanted. */
  public int logitRowCount() {
    return logitRowCount;
  }

  /** The token row whose logits go to logits row {@code r}. */
  public int logitSourceRow(int r) {
    return logitSourceRows[r];
  }

  public int maxTokens() {
    return tokens.length;
  }

  public int maxLogitRows() {
    return logitSourceRows.length;
  }

  /**
   * Says that the KV of layer {@code layer} is stored for every row; a forward pass calls it
   * after each layer, in layer order, so that KV can leave while the next layers compute.
   */
  public void layerStored(int layer) {
    layerListener.accept(layer);
  }

  // ---- assembly, by the engine ----

  /** What {@link #layerStored} tells. */
  public void onLayerStored(java.util.function.IntConsumer listener) {
    this.layerListener = listener;
  }

  /** Empties the batch. */
  public void clear() {
    java.util.Arrays.fill(blockTables, 0, sequenceCount, null);
    rowCount = 0;
    sequenceCount = 0;
    logitRowCount = 0;
  }

  /** Whether another token row fits. */
  public boolean hasRoomForRow() {
    return rowCount < tokens.length;
  }

  /** Whether another logits row fits. */
  public boolean hasRoomForLogits() {
    return logitRowCount < logitSourceRows.length;
  }

  /** Starts the rows of another sequence; returns its index in the batch. */
  public int addSequence(int[] blockTable) {
    blockTables[sequenceCount] = blockTable;
    return sequenceCount++;
  }

  /** Adds a row of sequence {@code sequence} (as {@link #addSequence} numbered it). */
  public void addRow(int sequence, int token, int position) {
    tokens[rowCount] = token;
    positions[rowCount] = position;
    rowSequence[rowCount] = sequence;
    rowCount++;
  }

  /** Asks for the logits of the last row added. */
  public void wantLogitsOfLastRow() {
    logitSourceRows[logitRowCount++] = rowCount - 1;
  }
}
