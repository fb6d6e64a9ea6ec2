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
 * before it is thrown. The chunks of a block-by-block stream must arrive in order; those of a
 * layered stream in any order, each once.
 */
public final class KvStreamReader {

  private final KvImport target;
  private final int chunkCount;
  private final boolean layered;
  /** Chunks accepted: in a block-by-block stream, also the index of the next one due. */
  private int accepted;

  private KvStreamReader(KvImport target, int chunkCount, boolean layered) {
    this.target = target;
    this.chunkCount = chunkCount;
    this.layered = layered;
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
        parsed.chunkCount(), parsed.layered());
  }

  /**
   * Starts importing the stream {@code source} writes, in this JVM, into {@code engine}: its
   * chunks are then copied in by {@link #copyChunk}, not read from bytes.
   *
   * @throws KvTransferException when its layout does not match
   * @throws io.duet.engine.KvCacheFullException when the blocks cannot be had
   */
  static KvStreamReader begin(Engine engine, KvStreamWriter source) {
    return new KvStreamReader(engine.beginImport(source.layout(), source.tokens()),
        source.chunkCount(), source.isLayered());
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

  public boolean isLayered() {
    return layered;
  }

  public boolean isComplete() {
    return accepted == chunkCount;
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

  /**
   * Copies chunk {@code index} of {@code source} (the stream this import was begun with, in
   * this JVM) into its block.
   *
   * @throws KvTransferException (after freeing everything) when it is out of order or came before
   */
  void copyChunk(int index, KvStreamWriter source) {
    try {
      if (isComplete() || !layered && index != accepted) {
        throw KvWireFormat.malformed("chunk " + index + " is not due after " + accepted + " of "
            + chunkCount);
      }
      source.copyChunk(index, target);
      accepted++;
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
    int blocks = target.blockCount();
    boolean known = layered ? index >= 0 && index < chunkCount : index == accepted;
    int block = layered ? Math.floorMod(index, blocks) : index;
    int expectedSlots = known ? target.slots(block) : -1;
    int expectedPayload = !known ? -1 : layered ? target.layerPayloadBytes(block)
        : target.payloadBytes(block);
    if (!known || slots != expectedSlots || payload != expectedPayload) {
      throw KvWireFormat.malformed("chunk " + index + " with " + slots + " slots / " + payload
          + " bytes does not fit" + (layered ? " a layered stream of " + chunkCount + " chunks"
              : " where chunk " + accepted + " was due"));
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
    ByteChain values = chunk.slice(KvWireFormat.CHUNK_PREFIX_BYTES, crcAt);
    if (layered) {
      target.writeBlockLayer(block, index / blocks, values);
    } else {
      target.writeBlock(index, values);
    }
    accepted++;
  }

  /** The imported sequence, every token computed; append the next token before stepping it. */
  public Sequence finish() {
    if (!isComplete()) {
      target.abort();
      throw KvWireFormat.truncated("finished after " + accepted + " of " + chunkCount
          + " chunks");
    }
    return target.finish();
  }

  /** Frees the blocks of an import that will not finish. Idempotent. */
  public void abort() {
    target.abort();
  }
}
