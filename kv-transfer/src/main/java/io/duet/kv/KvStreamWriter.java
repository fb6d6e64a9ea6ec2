package io.duet.kv;

import io.duet.engine.KvImport;
import io.duet.engine.KvLayout;
import io.duet.engine.KvSnapshot;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A sequence's KV ({@link KvSnapshot}) as a {@link KvWireFormat} stream: the header, then one
 * chunk per block (or, layered, per layer of a block), each encoded on demand so that a sender
 * can stream them without holding the whole transfer in memory.
 */
public final class KvStreamWriter {

  private final KvSnapshot snapshot;
  private final boolean layered;
  private final int blocks;
  private final byte[] header;

  /** The block-by-block stream of a computed sequence's KV. */
  public KvStreamWriter(KvSnapshot snapshot) {
    this(snapshot, false);
  }

  /**
   * @param layered one chunk per layer of a block, each sent once {@link #isReady}: for a
   *     snapshot read while it is computed ({@link io.duet.engine.Engine#exportKvAsComputed})
   */
  public KvStreamWriter(KvSnapshot snapshot, boolean layered) {
    this.snapshot = snapshot;
    this.layered = layered;
    this.blocks = snapshot.blockCount();
    this.header = KvWireFormat.encodeHeader(snapshot.layout(), snapshot.tokens(), chunkCount(),
        layered);
  }

  /** The header bytes (the receiver passes them to {@link KvStreamReader#begin}). */
  public byte[] header() {
    return header.clone();
  }

  public int tokenCount() {
    return snapshot.tokens().length;
  }

  public KvLayout layout() {
    return snapshot.layout();
  }

  public int[] tokens() {
    return snapshot.tokens();
  }

  /** Whether there is one chunk per layer of a block (a version 4 stream). */
  public boolean isLayered() {
    return layered;
  }

  public int chunkCount() {
    return layered ? blocks * snapshot.layout().layers() : blocks;
  }

  /** Whether chunk {@code index}'s KV is computed, so that it may be encoded. Any thread. */
  public boolean isReady(int index) {
    return !layered || snapshot.isComputed(index % blocks, index / blocks);
  }

  /** Bytes of the whole stream: header and every chunk. */
  public long totalBytes() {
    long total = header.length;
    for (int i = 0; i < chunkCount(); i++) {
      total += chunkLength(i);
    }
    return total;
  }

  /** Bytes of chunk {@code index} in the wire format. */
  public int chunkLength(int index) {
    return KvWireFormat.CHUNK_PREFIX_BYTES + payloadBytes(index) + KvWireFormat.CRC_BYTES;
  }

  private int payloadBytes(int index) {
    return layered ? snapshot.layerPayloadBytes(index % blocks) : snapshot.payloadBytes(index);
  }

  /** Encodes chunk {@code index}, with its CRC32C. */
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
    int payload = payloadBytes(index);
    ByteBuffer b = ByteBuffer.wrap(destination, offset, chunkLength(index)).slice()
        .order(ByteOrder.LITTLE_ENDIAN);
    int block = layered ? index % blocks : index;
    b.putInt(index).putInt(snapshot.slots(block)).putInt(payload);
    if (layered) {
      snapshot.readBlockLayer(block, index / blocks, b);
    } else {
      snapshot.readBlock(index, b);
    }
    int crcAt = KvWireFormat.CHUNK_PREFIX_BYTES + payload;
    b.putInt(crcAt, KvWireFormat.crc(destination, offset, crcAt));
  }

  /**
   * Copies chunk {@code index}'s KV into {@code target}, an import of an engine in this JVM:
   * from cache to cache, without encoding it (so without a CRC, which guards bytes that travel).
   */
  void copyChunk(int index, KvImport target) {
    if (layered) {
      target.copyBlockLayer(index % blocks, index / blocks, snapshot);
    } else {
      target.copyBlock(index, snapshot);
    }
  }

  /** Writes the header and every chunk (of a computed sequence). */
  public void writeTo(OutputStream out) throws IOException {
    out.write(header);
    for (int i = 0; i < chunkCount(); i++) {
      out.write(chunk(i));
    }
  }
}
