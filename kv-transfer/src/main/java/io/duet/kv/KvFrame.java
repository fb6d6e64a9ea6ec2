package io.duet.kv;

import io.netty.buffer.Unpooled;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.internal.buffer.BufferInternal;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32C;

/**
 * One frame of the KV transfer protocol between a decode instance (client) and a prefill
 * instance (server), over a dedicated TCP connection:
 *
 * <pre>
 * frame = u8:type u32:length payload[length] u32:crc32c(type, length, payload)   (big-endian)
 *
 * P -> D  NONCE     16 random bytes      first frame of every connection, sent by P at once
 * D -> P  PULL      id LF instance LF proof   start sending the leased KV (see PullAuth)
 * P -> D  HEADER    KV stream header     (engine KV wire format)
 * P -> D  CHUNK     one KV block         (engine KV wire format, one per block, in order)
 * P -> D  END       -                    every chunk was sent
 * P -> D  ERROR     "CODE: message"      the PULL or RELEASE cannot be served: UNKNOWN_TRANSFER
 *                                        (unknown id, wrong proof, not pulled by this connection
 *                                        or already pulled: one answer for all), LEASE_ENDED
 * D -> P  RELEASE   transfer id          D is done with the lease (imported or gave up)
 * P -> D  RELEASED  -                    the blocks are free; the connection is idle again
 * </pre>
 *
 * A connection carries one transfer at a time and is reused for the next one. A lease is served
 * once, and released only by the connection that pulled it; a connection that closes with a
 * lease pulled and not released ends that lease. A RELEASE that
 * arrives while a pull is being sent waits for that pull's END (or ERROR) and is answered after
 * it; a second PULL then is a protocol error that closes the connection. Frames are built
 * in one array and sent without further copies, and a received frame's payload is a view of
 * the network buffers it arrived in ({@link KvFrameParser}), valid while the frame handler
 * runs: KV chunks are large, and copies, not checksums, are what a transfer would otherwise
 * spend its time on.
 */
public record KvFrame(Type type, Buffer payload) {

  /** Bytes before the payload. */
  public static final int HEAD_BYTES = 5;
  public static final int CRC_BYTES = 4;
  /** Frames larger than this are refused rather than buffered. */
  public static final int MAX_PAYLOAD = 256 << 20;
  /**
   * The largest frame a KV server takes from a client: a PULL carries a transfer id, an instance
   * id and a proof, a RELEASE a transfer id, all far below this; so a client cannot make the
   * server buffer more than this per connection.
   */
  public static final int MAX_CLIENT_PAYLOAD = 4 << 10;

  public enum Type {
    PULL(1), HEADER(2), CHUNK(3), END(4), ERROR(5), RELEASE(6), RELEASED(7), NONCE(8);

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

  /** Writes a payload of a known length straight into the frame being built. */
  @FunctionalInterface
  public interface PayloadWriter {
    void write(byte[] destination, int offset);
  }

  public static KvFrame of(Type type, byte[] payload) {
    return new KvFrame(type, wrap(payload, 0, payload.length));
  }

  public static KvFrame text(Type type, String text) {
    return of(type, text.getBytes(StandardCharsets.UTF_8));
  }

  public static KvFrame empty(Type type) {
    return of(type, new byte[0]);
  }

  public String payloadText() {
    return payload.toString(StandardCharsets.UTF_8);
  }

  /**
   * The payload as the consecutive pieces it is made of (a received one: the network reads it
   * arrived in), each a view of those bytes, not a copy.
   */
  public ByteBuffer[] payloadBuffers() {
    return ((BufferInternal) payload).getByteBuf().nioBuffers();
  }

  /** The frame's bytes on the wire. */
  public Buffer encode() {
    int length = payload.length();
    return encode(type, length, (destination, at) ->
        payload.getBytes(0, length, destination, at));
  }

  /** Builds a frame whose payload {@code writer} writes in place: one array, no copies. */
  public static Buffer encode(Type type, int length, PayloadWriter writer) {
    byte[] frame = new byte[HEAD_BYTES + length + CRC_BYTES];
    frame[0] = (byte) type.code();
    putInt(frame, 1, length);
    writer.write(frame, HEAD_BYTES);
    putInt(frame, HEAD_BYTES + length, crc(frame, HEAD_BYTES + length));
    return wrap(frame, 0, frame.length);
  }

  private static int crc(byte[] bytes, int length) {
    CRC32C crc = new CRC32C();
    crc.update(bytes, 0, length);
    return (int) crc.getValue();
  }

  static int getInt(byte[] bytes, int at) {
    return (bytes[at] & 0xff) << 24 | (bytes[at + 1] & 0xff) << 16 | (bytes[at + 2] & 0xff) << 8
        | (bytes[at + 3] & 0xff);
  }

  private static void putInt(byte[] bytes, int at, int value) {
    bytes[at] = (byte) (value >>> 24);
    bytes[at + 1] = (byte) (value >>> 16);
    bytes[at + 2] = (byte) (value >>> 8);
    bytes[at + 3] = (byte) value;
  }

  private static Buffer wrap(byte[] bytes, int offset, int length) {
    return BufferInternal.buffer(Unpooled.wrappedBuffer(bytes, offset, length));
  }
}
