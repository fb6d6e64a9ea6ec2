package io.duet.engine;

/**
 * A KV import in progress: blocks are allocated for the whole sequence up front, each block's
 * payload (laid out as {@link KvSnapshot} describes) is copied in as it arrives, and
 * {@link #finish} turns the result into a {@link Sequence}. {@link #abort} (and every failure)
 * frees the blocks; nothing half-imported stays allocated.
 */
public interface KvImport {

  KvLayout layout();

  int[] tokens();

  int blockCount();

  /** Token slots block {@code index} carries. */
  int slots(int index);

  /** Bytes block {@code index}'s payload must have. */
  int payloadBytes(int index);

  /**
   * Copies block {@code index}'s payload in, read in place from {@code payload} (consecutive
   * buffers, e.g. the network reads it arrived in).
   *
   * @throws KvTransferException (after freeing the blocks) when the payload has the wrong size
   */
  void writeBlock(int index, ByteChain payload);

  /** Bytes one layer of block {@code index} must have. */
  int layerPayloadBytes(int index);

  /**
   * Copies layer {@code layer} of block {@code index} in (laid out as
   * {@link KvSnapshot#readBlockLayer} writes it), so that layers may arrive in any order, each
   * once, as the sender's engine computes them.
   *
   * @throws KvTransferException (after freeing the blocks) when the payload has the wrong size,
   *     or that layer of that block was written before
   */
  void writeBlockLayer(int index, int layer, ByteChain payload);

  /**
   * Copies every layer of block {@code index} from the same block of {@code source}: the export
   * of another engine of this layout in the same JVM, whose tokens this import was begun with.
   * One copy, from cache to cache, with no bytes in between.
   *
   * @throws KvTransferException (after freeing the blocks) when a layer of that block was
   *     written before
   * @throws IllegalArgumentException when {@code source} is not an export of this JVM's engines
   */
  void copyBlock(int index, KvSnapshot source);

  /**
   * Copies layer {@code layer} of block {@code index} from {@code source}, as
   * {@link #copyBlock}, once that layer is computed there ({@link KvSnapshot#readyTokens}).
   *
   * @throws KvTransferException (after freeing the blocks) when that layer of that block was
   *     written before
   */
  void copyBlockLayer(int index, int layer, KvSnapshot source);

  /**
   * The imported sequence, every token computed; append the next token before stepping it.
   *
   * @throws KvTransferException (after freeing the blocks) unless every layer of every block was
   *     written
   */
  Sequence finish();

  /** Frees the blocks of an import that will not finish. Idempotent. */
  void abort();
}
