package io.duet.engine;

import io.duet.engine.impl.BlockAllocator;
import io.duet.engine.impl.KvStorage;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * An import in progress: blocks are allocated for the whole sequence up front, chunks are
 * checked and copied in as they arrive, and {@link #finish} turns the result into a
 * {@link Sequence}. Any failure frees the blocks before it is thrown, and so does
 * {@link #abort}; nothing half-imported stays allocated. Chunks must arrive in order.
 */
public final class KvImport {

  private final Engine engine;
  private final KvStorage storage;
  private final BlockAllocator allocator;
  private final KvWireFormat.Header header;
  private final int[] blocks;
  private int nextChunk;
  private boolean closed;

  KvImport(Engine engine, KvStorage storage, BlockAllocator allocator, KvWireFormat.Header header,
      int[] blocks) {
    this.engine = engine;
    this.storage = storage;
    this.allocator = allocator;
    this.header = header;
    this.blocks = blocks;
  }

  public int tokenCount() {
    return header.tokens().length;
  }

  public int chunkCount() {
    return header.chunkCount();
  }

  public boolean isComplete() {
    return nextChunk == header.chunkCount();
  }

  /**
   * Checks one chunk and copies it into its block.
   *
   * @throws KvTransferException (after freeing everything) when it is out of order, of the wrong
   *     size or damaged
   */
  public void acceptChunk(byte[] chunk) {
    acceptChunk(chunk, 0, chunk.length);
  }

  /** {@link #acceptChunk(byte[])} for a chunk that sits at {@code offset} in a larger array. */
  public void acceptChunk(byte[] data, int offset, int length) {
    if (closed) {
      throw new IllegalStateException("import already finished or aborted");
    }
    try {
      copyIn(ByteBuffer.wrap(data, offset, length).slice().order(ByteOrder.LITTLE_ENDIAN),
          data, offset);
    } catch (KvTransferException e) {
      abort();
      throw e;
    }
  }

  private void copyIn(ByteBuffer b, byte[] data, int offset) {
    if (isComplete()) {
      throw KvWireFormat.malformed("chunk beyond the " + header.chunkCount() + " announced");
    }
    int length = b.remaining();
    if (length < KvWireFormat.CHUNK_PREFIX_BYTES + KvWireFormat.CRC_BYTES) {
      throw KvWireFormat.truncated("chunk of " + length + " bytes");
    }
    int index = b.getInt();
    int slots = b.getInt();
    int payload = b.getInt();
    int blockSize = storage.blockSize();
    int expectedSlots = Math.min(blockSize, tokenCount() - nextChunk * blockSize);
    int floats = expectedSlots * storage.kvDim();
    int layers = header.layout().layers();
    int expectedPayload = layers * 2 * floats * Float.BYTES;
    if (index != nextChunk || slots != expectedSlots || payload != expectedPayload) {
      throw KvWireFormat.malformed("chunk " + index + " with " + slots + " slots / " + payload
          + " bytes where chunk " + nextChunk + " with " + expectedSlots + " slots / "
          + expectedPayload + " bytes was due");
    }
    int crcAt = KvWireFormat.CHUNK_PREFIX_BYTES + payload;
    if (length < crcAt + KvWireFormat.CRC_BYTES) {
      throw KvWireFormat.truncated("chunk " + index + " has " + length + " of "
          + (crcAt + KvWireFormat.CRC_BYTES) + " bytes");
    }
    if (b.getInt(crcAt) != KvWireFormat.crc(data, offset, crcAt)) {
      throw new KvTransferException(KvTransferException.Reason.CORRUPTED,
          "CRC32C mismatch in chunk " + index);
    }
    var in = b.slice(KvWireFormat.CHUNK_PREFIX_BYTES, payload).order(ByteOrder.LITTLE_ENDIAN)
        .asFloatBuffer();
    int block = blocks[index];
    for (int l = 0; l < layers; l++) {
      float[] layer = storage.layer(l);
      in.get(layer, storage.keyOffset(block, 0), floats);
      in.get(layer, storage.valueOffset(block, 0), floats);
    }
    nextChunk++;
  }

  /** The imported sequence, every token computed; append the next token before stepping it. */
  public Sequence finish() {
    if (closed) {
      throw new IllegalStateException("import already finished or aborted");
    }
    if (!isComplete()) {
      abort();
      throw KvWireFormat.truncated("finished after " + nextChunk + " of " + header.chunkCount()
          + " chunks");
    }
    closed = true;
    return engine.adoptImported(header.tokens(), blocks);
  }

  /** Frees the blocks of an import that will not finish. Idempotent. */
  public void abort() {
    if (!closed) {
      closed = true;
      for (int block : blocks) {
        allocator.release(block);
      }
    }
  }
}
