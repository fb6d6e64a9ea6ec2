package io.duet.engine;

import io.duet.engine.impl.BlockAllocator;
import io.duet.engine.impl.KvStorage;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

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
    acceptChunk(ByteBuffer.wrap(chunk));
  }

  /**
   * {@link #acceptChunk(byte[])} for a chunk held in consecutive buffers, as it arrived from
   * the network: their remaining bytes, in order, are the chunk. They are read in place (their
   * positions do not move), direct or not, so that the copy into the KV cache is the only one.
   */
  public void acceptChunk(ByteBuffer... pieces) {
    if (closed) {
      throw new IllegalStateException("import already finished or aborted");
    }
    try {
      copyIn(new Pieces(pieces));
    } catch (KvTransferException e) {
      abort();
      throw e;
    }
  }

  private void copyIn(Pieces chunk) {
    if (isComplete()) {
      throw KvWireFormat.malformed("chunk beyond the " + header.chunkCount() + " announced");
    }
    long length = chunk.length();
    if (length < KvWireFormat.CHUNK_PREFIX_BYTES + KvWireFormat.CRC_BYTES) {
      throw KvWireFormat.truncated("chunk of " + length + " bytes");
    }
    int index = chunk.getInt();
    int slots = chunk.getInt();
    int payload = chunk.getInt();
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
    chunk.seek(crcAt);
    if (chunk.getInt() != chunk.crc(crcAt)) {
      throw new KvTransferException(KvTransferException.Reason.CORRUPTED,
          "CRC32C mismatch in chunk " + index);
    }
    chunk.seek(KvWireFormat.CHUNK_PREFIX_BYTES);
    int block = blocks[index];
    int runFloats = expectedSlots * storage.headSize();
    for (int l = 0; l < layers; l++) {
      float[] layer = storage.layer(l);
      for (int run = 0; run < storage.runsPerBlock(); run++) {
        chunk.getFloats(layer, storage.runOffset(block, run), runFloats);
      }
    }
    nextChunk++;
  }

  /**
   * A chunk as the buffers it is spread over, read in place: little-endian values, the odd one
   * split between two buffers (network reads end anywhere) put together byte by byte.
   */
  private static final class Pieces {
    private final ByteBuffer[] pieces;
    private final long length;
    /** Where reading goes on: a piece, and a byte offset in it. */
    private int piece;
    private int offset;

    Pieces(ByteBuffer[] buffers) {
      pieces = new ByteBuffer[buffers.length];
      long total = 0;
      for (int i = 0; i < buffers.length; i++) {
        pieces[i] = buffers[i].slice().order(ByteOrder.LITTLE_ENDIAN);
        total += pieces[i].limit();
      }
      length = total;
    }

    long length() {
      return length;
    }

    /** CRC32C of the chunk's first {@code bytes} bytes. */
    int crc(long bytes) {
      CRC32C crc = new CRC32C();
      long left = bytes;
      for (ByteBuffer p : pieces) {
        int take = (int) Math.min(left, p.limit());
        crc.update(p.duplicate().limit(take));
        left -= take;
      }
      return (int) crc.getValue();
    }

    /** Reads on from byte {@code at} of the chunk (less than its length). */
    void seek(long at) {
      piece = 0;
      while (at >= pieces[piece].limit()) {
        at -= pieces[piece].limit();
        piece++;
      }
      offset = (int) at;
    }

    int getInt() {
      int value = 0;
      for (int i = 0; i < Integer.BYTES; i++) {
        while (offset == pieces[piece].limit()) {
          piece++;
          offset = 0;
        }
        value |= (pieces[piece].get(offset++) & 0xff) << (8 * i);
      }
      return value;
    }

    /** Copies the next {@code count} floats into {@code destination} from {@code at}. */
    void getFloats(float[] destination, int at, int count) {
      while (count > 0) {
        ByteBuffer p = pieces[piece];
        int whole = Math.min(count, (p.limit() - offset) / Float.BYTES);
        if (whole > 0) {
          p.slice(offset, whole * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
              .get(destination, at, whole);
          offset += whole * Float.BYTES;
        } else { // a float split between this piece and the next, or this piece is used up
          destination[at] = Float.intBitsToFloat(getInt());
          whole = 1;
        }
        at += whole;
        count -= whole;
      }
    }
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
