package io.duet.cluster.transfer;

import io.vertx.core.buffer.Buffer;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32C;

/**
 * One frame of the KV transfer protocol between a decode instance (client) and a prefill
 * instance (server), over a dedicated TCP connection:
 *
 * <pre>
 * frame = u8:type u32:length payload[length] u32:crc32c(type, length, payload)   (big-endian)
 *
 * D -> P  PULL      transfer id          start sending the leased KV
 * P -> D  HEADER    KV stream header     (engine KV wire format)
 * P -> D  CHUNK     one KV block         (engine KV wire format, one per block, in order)
 * P -> D  END       -                    every chunk was sent
 * P -> D  ERROR     "CODE: message"      the pull cannot be served (unknown or expired lease)
 * D -> P  RELEASE   transfer id          D is done with the lease (imported or gave up)
 * P -> D  RELEASED  -                    the blocks are free; the connection is idle again
 * </pre>
 *
 * A connection carries one transfer at a time and is reused for the next one.
 */
public record KvFrame(Type type, Buffer payload) {

  /** Bytes before the payload. */
  public static final int HEAD_BYTES = 5;
  public static final int CRC_BYTES = 4;
  /** Frames larger than this are refused rather than buffered. */
  public static final int MAX_PAYLOAD = 256 << 20;

  public enum Type {
    PULL(1), HEADER(2), CHUNK(3), END(4), ERROR(5), RELEASE(6), RELEASED(7);

    private final int code;

    Type(int code) {
      this.code = code;
    }

    public int code() {
      return code;
    }

    public static Type of(int code) {
      for (Type t : values()) {
        if (t.code == code) {
          return t;
        }
      }
      throw new KvProtocolException("unknown frame type " + code);
    }
  }

  public static KvFrame of(Type type, byte[] payload) {
    return new KvFrame(type, Buffer.buffer(payload));
  }

  public static KvFrame text(Type type, String text) {
    return of(type, text.getBytes(StandardCharsets.UTF_8));
  }

  public static KvFrame empty(Type type) {
    return new KvFrame(type, Buffer.buffer());
  }

  public String payloadText() {
    return payload.toString(StandardCharsets.UTF_8);
  }

  /** The frame's bytes on the wire. */
  public Buffer encode() {
    int length = payload.length();
    Buffer out = Buffer.buffer(HEAD_BYTES + length + CRC_BYTES);
    out.appendByte((byte) type.code()).appendInt(length).appendBuffer(payload);
    out.appendInt(crc(out, 0, HEAD_BYTES + length));
    return out;
  }

  /**
   * Decodes a frame from its head and the rest (payload and CRC), as a {@link KvFrameParser}
   * cuts them.
   *
   * @throws KvProtocolException when the CRC does not match
   */
  static KvFrame decode(Buffer head, Buffer rest) {
    int length = head.getInt(1);
    CRC32C crc = new CRC32C();
    update(crc, head, 0, HEAD_BYTES);
    update(crc, rest, 0, length);
    if ((int) crc.getValue() != rest.getInt(length)) {
      throw new KvProtocolException("frame CRC32C mismatch");
    }
    return new KvFrame(Type.of(head.getByte(0)), rest.slice(0, length));
  }

  private static int crc(Buffer buffer, int from, int to) {
    CRC32C crc = new CRC32C();
    update(crc, buffer, from, to - from);
    return (int) crc.getValue();
  }

  private static void update(CRC32C crc, Buffer buffer, int from, int length) {
    crc.update(((io.vertx.core.internal.buffer.BufferInternal) buffer).getByteBuf().nioBuffer(from, length));
  }
}
