package io.duet.kv;

import io.duet.engine.KvComponent;
import io.duet.engine.KvLayout;
import io.duet.engine.KvTransferException;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32C;

/**
 * The self-describing byte stream one sequence's KV blocks travel in. All integers and floats
 * are little-endian.
 *
 * <pre>
 * header    = "DUETKV" u16:version u32:bodyLength body u32:crc32c(body)
 * body      = str:modelHash u32:layers u32:blockSize u16:componentCount component[componentCount]
 *             u32:tokenCount u32:chunkCount u32[tokenCount]:tokens
 * component = str:name str:dtype u32:valuesPerToken u32:runs
 * str       = u16:length utf8-bytes
 * chunk     = u32:index u32:slots u32:payloadLength payload u32:crc32c(index..payload)
 * payload   = for each layer, for each component, for each run: its values of the slots
 * end       = nothing, or u32:firstToken u64:samplerState
 * </pre>
 *
 * Chunk {@code i} of a version 3 stream carries block {@code i} of the sequence
 * ({@link io.duet.engine.KvSnapshot}): {@code blockSize} token slots, fewer in the last one. A
 * version 4 stream is <em>layered</em>: it is sent while the sender's engine computes the KV, so
 * it has {@code blocks * layers} chunks, chunk {@code i} carrying layer {@code i / blocks} of
 * block {@code i % blocks} (its payload is that layer's part of the block's), and they come in
 * the order they were computed, each once; its end carries the first token sampled after the
 * prompt and the sampler's state then ({@link FirstToken}), which the sender knew only when its
 * prefill ended. The format knows nothing of any architecture: the header's components say what
 * a token stores. Every length is checked against the header before it is trusted.
 */
public final class KvWireFormat {

  static final byte[] MAGIC = "DUETKV".getBytes(StandardCharsets.US_ASCII);
  /**
   * 3: the layout as a list of components (version 2 named Llama's keys and values, version 1
   * had them position-major).
   */
  static final int VERSION = 3;
  /** The layered stream: chunks per layer of a block, in any order, and a first token. */
  static final int LAYERED_VERSION = 4;
  /** Magic, version and body length: what must be read to know the header's size. */
  public static final int HEADER_PREFIX_BYTES = MAGIC.length + 2 + 4;
  /** Index, slots and payload length: what must be read to know a chunk's size. */
  public static final int CHUNK_PREFIX_BYTES = 12;
  public static final int CRC_BYTES = 4;
  private static final int MAX_HEADER_BODY = 64 << 20;
  private static final int MAX_CHUNK_PAYLOAD = 1 << 30;

  private KvWireFormat() {
  }

  /**
   * The parsed header: the sender's layout and the tokens whose KV follows.
   *
   * @param layered whether chunks carry one layer of a block each, in any order (version 4)
   */
  public record Header(KvLayout layout, int[] tokens, int chunkCount, boolean layered) {

    /** Blocks of the sequence. */
    public int blockCount() {
      return layered ? chunkCount / layout.layers() : chunkCount;
    }
  }

  /**
   * The whole header's length given its first {@link #HEADER_PREFIX_BYTES} bytes.
   *
   * @throws KvTransferException when the prefix is not a KV stream of this version
   */
  public static int headerLength(ByteBuffer prefix) {
    ByteBuffer b = prefix.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    for (byte m : MAGIC) {
      if (b.get() != m) {
        throw malformed("not a KV stream (bad magic)");
      }
    }
    int version = Short.toUnsignedInt(b.getShort());
    if (version != VERSION && version != LAYERED_VERSION) {
      throw malformed("KV stream version " + version + ", this engine reads versions " + VERSION
          + " and " + LAYERED_VERSION);
    }
    int body = b.getInt();
    if (body < 0 || body > MAX_HEADER_BODY) {
      throw malformed("header body length " + body + " out of range");
    }
    return HEADER_PREFIX_BYTES + body + CRC_BYTES;
  }

  /**
   * A whole chunk's length given its first {@link #CHUNK_PREFIX_BYTES} bytes.
   */
  public static int chunkLength(ByteBuffer prefix) {
    int payload = prefix.duplicate().order(ByteOrder.LITTLE_ENDIAN).getInt(8);
    if (payload < 0 || payload > MAX_CHUNK_PAYLOAD) {
      throw malformed("chunk payload length " + payload + " out of range");
    }
    return CHUNK_PREFIX_BYTES + payload + CRC_BYTES;
  }

  static byte[] encodeHeader(KvLayout layout, int[] tokens, int chunkCount, boolean layered) {
    byte[] hash = utf8(layout.modelHash());
    int body = 2 + hash.length + 4 + 4 + 2 + 4 + 4 + 4 * tokens.length;
    for (KvComponent c : layout.components()) {
      body += 2 + utf8(c.name()).length + 2 + utf8(c.dtype()).length + 4 + 4;
    }
    ByteBuffer b = ByteBuffer.allocate(HEADER_PREFIX_BYTES + body + CRC_BYTES)
        .order(ByteOrder.LITTLE_ENDIAN);
    b.put(MAGIC).putShort((short) (layered ? LAYERED_VERSION : VERSION)).putInt(body);
    int bodyStart = b.position();
    putString(b, layout.modelHash());
    b.putInt(layout.layers()).putInt(layout.blockSize())
        .putShort((short) layout.components().size());
    for (KvComponent c : layout.components()) {
      putString(b, c.name());
      putString(b, c.dtype());
      b.putInt(c.valuesPerToken()).putInt(c.runs());
    }
    b.putInt(tokens.length).putInt(chunkCount);
    for (int token : tokens) {
      b.putInt(token);
    }
    b.putInt(crc(b.array(), bodyStart, body));
    return b.array();
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  private static void putString(ByteBuffer b, String text) {
    byte[] bytes = utf8(text);
    b.putShort((short) bytes.length).put(bytes);
  }

  /** Parses and checks a whole header. */
  public static Header parseHeader(byte[] header) {
    if (header.length < HEADER_PREFIX_BYTES) {
      throw truncated("header of " + header.length + " bytes is shorter than its prefix");
    }
    int length = headerLength(ByteBuffer.wrap(header, 0, HEADER_PREFIX_BYTES));
    if (header.length < length) {
      throw truncated("header needs " + length + " bytes, got " + header.length);
    }
    int body = length - HEADER_PREFIX_BYTES - CRC_BYTES;
    ByteBuffer b = ByteBuffer.wrap(header, 0, length).order(ByteOrder.LITTLE_ENDIAN);
    if (b.getInt(length - CRC_BYTES) != crc(header, HEADER_PREFIX_BYTES, body)) {
      throw new KvTransferException(KvTransferException.Reason.CORRUPTED,
          "header CRC32C mismatch");
    }
    boolean layered = b.getShort(MAGIC.length) == LAYERED_VERSION;
    b.position(HEADER_PREFIX_BYTES);
    try {
      String hash = string(b);
      int layers = b.getInt();
      int blockSize = b.getInt();
      int componentCount = Short.toUnsignedInt(b.getShort());
      List<KvComponent> components = new ArrayList<>();
      for (int i = 0; i < componentCount; i++) {
        components.add(new KvComponent(string(b), string(b), b.getInt(), b.getInt()));
      }
      int tokenCount = b.getInt();
      int chunks = b.getInt();
      if (tokenCount <= 0 || blockSize <= 0 || layers <= 0
          || tokenCount * 4L != b.remaining() - CRC_BYTES
          || chunks != (long) (tokenCount + blockSize - 1) / blockSize * (layered ? layers : 1)) {
        throw malformed("inconsistent header: " + tokenCount + " tokens, block size " + blockSize
            + ", " + chunks + " chunks");
      }
      int[] tokens = new int[tokenCount];
      for (int i = 0; i < tokenCount; i++) {
        tokens[i] = b.getInt();
      }
      return new Header(new KvLayout(hash, layers, components, blockSize), tokens, chunks,
          layered);
    } catch (java.nio.BufferUnderflowException e) {
      throw malformed("header fields run past its declared length");
    } catch (IllegalArgumentException e) {
      throw malformed("impossible layout in the header: " + e.getMessage());
    }
  }

  private static String string(ByteBuffer b) {
    int length = Short.toUnsignedInt(b.getShort());
    byte[] bytes = new byte[length];
    b.get(bytes);
    return new String(bytes, StandardCharsets.UTF_8);
  }

  static int crc(byte[] data, int offset, int length) {
    CRC32C crc = new CRC32C();
    crc.update(data, offset, length);
    return (int) crc.getValue();
  }

  /** Reads one header from a stream, failing with TRUNCATED if the stream ends inside it. */
  static byte[] readHeader(InputStream in) throws IOException {
    return readRecord(in, HEADER_PREFIX_BYTES, KvWireFormat::headerLength, "header");
  }

  /** Reads one chunk from a stream, failing with TRUNCATED if the stream ends inside it. */
  static byte[] readChunk(InputStream in) throws IOException {
    return readRecord(in, CHUNK_PREFIX_BYTES, KvWireFormat::chunkLength, "chunk");
  }

  /** Reads a record whose whole length its fixed-size prefix tells. */
  private static byte[] readRecord(InputStream in, int prefixLength,
      java.util.function.ToIntFunction<ByteBuffer> lengthOf, String what) throws IOException {
    byte[] prefix = new byte[prefixLength];
    readInto(in, prefix, 0, prefixLength, what);
    int length = lengthOf.applyAsInt(ByteBuffer.wrap(prefix));
    byte[] record = java.util.Arrays.copyOf(prefix, length);
    readInto(in, record, prefixLength, length - prefixLength, what);
    return record;
  }

  private static void readInto(InputStream in, byte[] bytes, int offset, int length, String what)
      throws IOException {
    int done = 0;
    while (done < length) {
      int n = in.read(bytes, offset + done, length - done);
      if (n < 0) {
        throw truncated("stream ended " + (length - done) + " bytes before the end of a " + what);
      }
      done += n;
    }
  }

  /** The END frame's payload of a layered stream. */
  static byte[] encodeEnd(FirstToken first) {
    return ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).putInt(first.token())
        .putLong(first.samplerState()).array();
  }

  /**
   * The first token an END frame's payload carries: null for an empty payload (version 3).
   *
   * @throws KvTransferException when the payload is neither empty nor a first token
   */
  static FirstToken parseEnd(ByteBuffer payload) {
    if (!payload.hasRemaining()) {
      return null;
    }
    if (payload.remaining() != 12) {
      throw malformed("END frame of " + payload.remaining() + " bytes");
    }
    ByteBuffer b = payload.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    return new FirstToken(b.getInt(), b.getLong());
  }

  static KvTransferException malformed(String message) {
    return new KvTransferException(KvTransferException.Reason.MALFORMED, message);
  }

  static KvTransferException truncated(String message) {
    return new KvTransferException(KvTransferException.Reason.TRUNCATED, message);
  }
}
