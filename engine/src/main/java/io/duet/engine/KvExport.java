package io.duet.engine;

import io.duet.engine.impl.KvStorage;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One sequence's KV blocks laid out in the {@link KvWireFormat}: a header, then one chunk per
 * block, each encoded on demand so that a sender can stream them without holding the whole
 * transfer in memory.
 */
public final class KvExport {

  private final KvStorage storage;
  private final int[] blocks;
  private final int tokenCount;
  private final int layers;
  private final byte[] header;

  KvExport(KvLayout layout, KvStorage storage, int[] tokens, int computedTokens, int[] blocks) {
    this.storage = storage;
    this.tokenCount = computedTokens;
    this.layers = layout.layers();
    int blockSize = storage.blockSize();
    int chunkCount = (computedTokens + blockSize - 1) / blockSize;
    this.blocks = java.util.Arrays.copyOf(blocks, chunkCount);
    this.header = KvWireFormat.encodeHeader(layout, java.util.Arrays.copyOf(tokens, computedTokens),
        chunkCount);
  }

  /** The header bytes (the receiver passes them to {@link Engine#beginImport}). */
  public byte[] header() {
    return header.clone();
  }

  public int tokenCount() {
    return tokenCount;
  }

  public int chunkCount() {
    return blocks.length;
  }

  /** Token slots carried by chunk {@code index}. */
  private int slots(int index) {
    return Math.min(storage.blockSize(), tokenCount - index * storage.blockSize());
  }

  /** Bytes of the whole stream: header and every chunk. */
  public long totalBytes() {
    long total = header.length;
    for (int i = 0; i < blocks.length; i++) {
      total += chunkLength(i);
    }
    return total;
  }

  private int payloadBytes(int index) {
    return layers * 2 * slots(index) * storage.kvDim() * Float.BYTES;
  }

  /** Bytes of chunk {@code index} in the wire format. */
  public int chunkLength(int index) {
    return KvWireFormat.CHUNK_PREFIX_BYTES + payloadBytes(index) + KvWireFormat.CRC_BYTES;
  }

  /** Encodes chunk {@code index}: block {@code index} of the sequence, with its CRC32C. */
  public byte[] chunk(int index) {
    byte[] bytes = new byte[chunkLength(index)];
    writeChunk(index, bytes, 0);
    return bytes;
  }

  /**
   * Encodes chunk {@code index} into {@code destination} at {@code offset}
   * ({@link #chunkLength} bytes), so that a sender can build its frame without a copy.
   */
  public void writeChunk(int index, byte[] destination, int offset) {
    int slots = slots(index);
    int payload = payloadBytes(index);
    ByteBuffer b = ByteBuffer.wrap(destination, offset, chunkLength(index)).slice()
        .order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(index).putInt(slots).putInt(payload);
    int block = blocks[index];
    var out = b.slice().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    int runFloats = slots * storage.headSize();
    for (int l = 0; l < layers; l++) {
      float[] layer = storage.layer(l);
      for (int run = 0; run < storage.runsPerBlock(); run++) {
        out.put(layer, storage.runOffset(block, run), runFloats);
      }
    }
    int crcAt = KvWireFormat.CHUNK_PREFIX_BYTES + payload;
    b.putInt(crcAt, KvWireFormat.crc(destination, offset, crcAt));
  }

  /** Writes the header and every chunk. */
  public void writeTo(OutputStream out) throws IOException {
    out.write(header);
    for (int i = 0; i < blocks.length; i++) {
      out.write(chunk(i));
    }
  }
}
