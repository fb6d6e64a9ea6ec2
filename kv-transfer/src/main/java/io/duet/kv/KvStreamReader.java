package io.duet.kv;

import io.duet.engine.ByteChain;
import io.duet.engine.Engine;
import io.duet.engine.KvImport;
import io.duet.engine.KvTransferException;
import io.duet.engine.Sequence;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;

/**
 * Reads a {@link KvWireFormat} stream into an engine: the header starts an import (checking the
 * layout), each chunk is checked (order, size, CRC32C) and its payload copied into its block,
 * and {@link #finish} yields the sequence. Any failure aborts the import, freeing its blocks,
 * before it is thrown. Chunks must arrive in order.
 */
public final class KvStreamReader {

  private final KvImport target;
  private final int chunkCount;
  private int nextChunk;

  private KvStreamReader(KvImport target, int chunkCount) {
    this.target = target;
    this.chunkCount = chunkCount;
  }

  /**
   * Starts importing the stream whose header is {@code header} into {@code engine}.
   *
   * @throws KvTransferException when the header is damaged or its layout does not match
   * @throws io.duet.engine.KvCacheFullException when the blocks cannot be had
   */
  public static KvStreamReader begin(Engine engine, byte[] header) {
    KvWireFormat.Header parsed = KvWireFormat.parseHeader(header);
    return new KvStreamReader(engine.beginImport(parsed.layout(), parsed.tokens()),
        parsed.chunkCount());
  }

  /** Reads a whole stream and imports it. */
  public static Sequence read(Engine engine, InputStream in) throws IOException {
    KvStreamReader reader = begin(engine, KvWireFormat.readHeader(in));
    try {
      while (!reader.isComplete()) {
        reader.acceptChunk(ByteBuffer.wrap(KvWireFormat.readChunk(in)));
      }
      return reader.finish();
    } finally {
      reader.abort();
    }
  }

  public int tokenCount() {
    return target.tokens().length;
  }

  public int chunkCount() {
    return chunkCount;
  }

  public boolean isComplete() {
    return nextChunk == chunkCount;
  }

  /**
   * Checks one chunk and copies it into its block. The chunk's bytes are the remaining bytes of
   * {@code pieces}, in order, as they arrived from the network; they are read in place, direct
   * or not, so that the copy into the KV cache is the only one.
   *
   * @throws KvTransferException (after freeing everything) when it is out of order, of the wrong
   *     size or damaged
   */
  public void acceptChunk(ByteBuffer... pieces) {
    try {
      copyIn(ByteChain.of(pieces));
    } catch (KvTransferException e) {
      target.abort();
      throw e;
    }
  }

  private void copyIn(ByteChain chunk) {
    if (isComplete()) {
      throw KvWireFormat.malformed("chunk beyond the " + chunkCount + " announced");
    }
    long length = chunk.length();
    if (length < KvWireFormat.CHUNK_PREFIX_BYTES + KvWireFormat.CRC_BYTES) {
      throw KvWireFormat.truncated("chunk of " + length + " bytes");
    }
    chunk.seek(0);
    int index = chunk.getInt();
    int slots = chunk.getInt();
    int payload = chunk.getInt();
    int expectedSlots = target.slots(nextChunk);
    int expectedPayload = target.payloadBytes(nextChunk);
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
    if (chunk.seek(crcAt).getInt() != chunk.crc32c(crcAt)) {
      throw new KvTransferException(KvTransferException.Reason.CORRUPTED,
          "CRC32C mismatch in chunk " + index);
    }
    target.writeBlock(index, chunk.slice(KvWireFormat.CHUNK_PREFIX_BYTES, crcAt));
    nextChunk++;
  }

  /** The imported sequence, every token computed; append the next token before stepping it. */
  public Sequence finish() {
    if (!isComplete()) {
      target.abort();
      throw KvWireFormat.truncated("finished after " + nextChunk + " of " + chunkCount
          + " chunks");
    }
    return target.finish();
  }

  /** Frees the blocks of an import that will not finish. Idempotent. */
  public void abort() {
    target.abort();
  }
}
