package io.duet.kv;

import io.duet.engine.KvSnapshot;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A sequence's KV ({@link KvSnapshot}) as a {@link KvWireFormat} stream: the header, then one
 * chunk per block, each encoded on demand so that a sender can stream them without holding the
 * whole transfer in memory.
 */
public final class KvStreamWriter {

  private final KvSnapshot snapshot;
  private final byte[] header;

  public KvStreamWriter(KvSnapshot snapshot) {
    this.snapshot = snapshot;
    this.header = KvWireFormat.encodeHeader(snapshot.layout(), snapshot.tokens(),
        snapshot.blockCount());
  }

  /** The header bytes (the receiver passes them to {@link KvStreamReader#begin}). */
  public byte[] header() {
    return header.clone();
  }

  public int tokenCount() {
    return snapshot.tokens().length;
  }

  public int chunkCount() {
    return snapshot.blockCount();
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
    return KvWireFormat.CHUNK_PREFIX_BYTES + snapshot.payloadBytes(index)
        + KvWireFormat.CRC_BYTES;
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
    int payload = snapshot.payloadBytes(index);
    ByteBuffer b = ByteBuffer.wrap(destination, offset, chunkLength(index)).slice()
        .order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(index).putInt(snapshot.slots(index)).putInt(payload);
    snapshot.readBlock(index, b);
    int crcAt = KvWireFormat.CHUNK_PREFIX_BYTES + payload;
    b.putInt(crcAt, KvWireFormat.crc(destination, offset, crcAt));
  }

  /** Writes the header and every chunk. */
  public void writeTo(OutputStream out) throws IOException {
    out.write(header);
    for (int i = 0; i < chunkCount(); i++) {
      out.write(chunk(i));
    }
  }
}
