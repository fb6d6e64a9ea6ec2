package io.duet.engine.impl;

import io.duet.engine.spi.ExpertExchange;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The wire format of the expert-parallel data channel, little-endian throughout.
 *
 * <p>A connection opens with a handshake in which each end proves the shared secret:
 * the connecting rank sends HELLO (magic, version, group size, group, its rank, the rank it
 * wants, a 16-byte nonce), the accepting rank answers its own nonce and HMAC-SHA256(secret,
 * "acceptor" || hello || its nonce), and the connecting rank answers HMAC-SHA256(secret,
 * "connector" || hello || that nonce). Without a secret both MACs are keyed with a fixed
 * string: the handshake then only checks that both ends run this protocol for the same group.
 *
 * <p>Then frames: {@code int length} (of what follows), {@code int type}, {@code long step},
 * {@code int layer}, and the type's body: ROWS {@code int count, int width, int[count] tags,
 * float[count * width] rows}; RESULTS {@code int count, int width, float[count * width]};
 * DONE, BYE nothing; FAIL a UTF-8 reason.
 */
final class ExpertWire {

  static final int ROWS = 1;
  static final int RESULTS = 2;
  /** The sender has finished its step and only serves. */
  static final int DONE = 3;
  /** The sender failed the exchange under way; the body says why. */
  static final int FAIL = 4;
  /** The sender leaves the group for good (its engine closes). */
  static final int BYE = 5;

  static final int HEADER_BYTES = Integer.BYTES + Long.BYTES + Integer.BYTES;
  private static final int MAGIC = 0x31504544; // "DEP1" read little-endian
  private static final int VERSION = 1;
  static final int NONCE_BYTES = 16;
  static final int MAC_BYTES = 32;
  static final int HELLO_BYTES = 6 * Integer.BYTES + NONCE_BYTES;
  private static final int MAX_REASON_BYTES = 1024;
  private static final byte[] NO_SECRET = "duet-expert-channel".getBytes(StandardCharsets.UTF_8);
  private static final SecureRandom RANDOM = new SecureRandom();

  private ExpertWire() {
  }

  /** A frame as read: its type, step, layer, and its body positioned after the header. */
  record Frame(int type, long step, int layer, ByteBuffer body) {

    /** The reason a FAIL frame carries. */
    String reason() {
      byte[] bytes = new byte[body.remaining()];
      body.get(bytes);
      return new String(bytes, StandardCharsets.UTF_8);
    }

    /** Reads a ROWS frame into {@code mail}, using {@code scratch} for one row. */
    void readRows(ExpertExchange.Mail mail, float[][] scratch) {
      int count = body.getInt();
      int width = body.getInt();
      mail.clear(layer, width);
      if (count == 0) {
        return;
      }
      int[] tags = new int[count];
      body.asIntBuffer().get(tags);
      body.position(body.position() + count * Integer.BYTES);
      if (scratch[0].length < width) {
        scratch[0] = new float[width];
      }
      java.nio.FloatBuffer rows = body.asFloatBuffer();
      for (int i = 0; i < count; i++) {
        rows.get(scratch[0], 0, width);
        mail.add(scratch[0], 0, tags[i]);
      }
    }

    /**
     * Reads a RESULTS frame into the results of {@code mail}, whose rows they answer.
     *
     * @throws IOException when they do not match its rows
     */
    void readResults(ExpertExchange.Mail mail) throws IOException {
      int count = body.getInt();
      int width = body.getInt();
      if (count != mail.count() || (count > 0 && width != mail.width())) {
        throw new IOException("results for " + count + " rows of " + width + " floats answer "
            + mail.count() + " rows of " + mail.width());
      }
      body.asFloatBuffer().get(mail.results(), 0, count * width);
    }
  }

  /** Writes frames into a buffer it reuses, then to a stream whole. */
  static final class Writer {
    private final int maxFrameBytes;
    private ByteBuffer buffer = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);

    Writer(int maxFrameBytes) {
      this.maxFrameBytes = maxFrameBytes;
    }

    void rows(OutputStream out, long step, ExpertExchange.Mail mail) throws IOException {
      int count = mail.count();
      int width = count == 0 ? 0 : mail.width();
      start(ROWS, step, mail.layer(), 2 * Integer.BYTES + (long) count * Integer.BYTES
          + (long) count * width * Float.BYTES);
      buffer.putInt(count).putInt(width);
      for (int i = 0; i < count; i++) {
        buffer.putInt(mail.tag(i));
      }
      buffer.asFloatBuffer().put(mail.rows(), 0, count * width);
      buffer.position(buffer.position() + count * width * Float.BYTES);
      send(out);
    }

    void results(OutputStream out, long step, ExpertExchange.Mail mail) throws IOException {
      int count = mail.count();
      int width = count == 0 ? 0 : mail.width();
      start(RESULTS, step, mail.layer(), 2 * Integer.BYTES
          + (long) count * width * Float.BYTES);
      buffer.putInt(count).putInt(width);
      buffer.asFloatBuffer().put(mail.results(), 0, count * width);
      buffer.position(buffer.position() + count * width * Float.BYTES);
      send(out);
    }

    /** A frame with no body (DONE, BYE). */
    void empty(OutputStream out, int type, long step) throws IOException {
      start(type, step, -1, 0);
      send(out);
    }

    void fail(OutputStream out, long step, String reason) throws IOException {
      byte[] bytes = reason.getBytes(StandardCharsets.UTF_8);
      int length = Math.min(bytes.length, MAX_REASON_BYTES);
      start(FAIL, step, -1, length);
      buffer.put(bytes, 0, length);
      send(out);
    }

    private void start(int type, long step, int layer, long bodyBytes) throws IOException {
      long frame = Integer.BYTES + HEADER_BYTES + bodyBytes;
      if (frame > maxFrameBytes) {
        throw new IOException("a frame of " + frame + " bytes exceeds the expert channel's "
            + "limit of " + maxFrameBytes + " bytes");
      }
      if (buffer.capacity() < frame) {
        buffer = ByteBuffer.allocate((int) Math.max(frame, Math.min(maxFrameBytes,
            2L * buffer.capacity()))).order(ByteOrder.LITTLE_ENDIAN);
      }
      buffer.clear();
      buffer.putInt((int) (frame - Integer.BYTES)).putInt(type).putLong(step).putInt(layer);
    }

    private void send(OutputStream out) throws IOException {
      out.write(buffer.array(), 0, buffer.position());
      out.flush();
    }
  }

  /**
   * Reads the next frame whole.
   *
   * @throws EOFException when the stream ends between frames
   * @throws IOException when it ends inside one or announces one beyond {@code maxFrameBytes}
   */
  static Frame read(DataInputStream in, int maxFrameBytes) throws IOException {
    int length = Integer.reverseBytes(in.readInt());
    if (length < HEADER_BYTES || length > maxFrameBytes - Integer.BYTES) {
      throw new IOException("a frame of " + length + " bytes is outside the expert channel's "
          + "bounds (" + HEADER_BYTES + " to " + maxFrameBytes + ")");
    }
    byte[] bytes = new byte[length];
    in.readFully(bytes);
    ByteBuffer buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    return new Frame(buffer.getInt(), buffer.getLong(), buffer.getInt(), buffer.slice()
        .order(ByteOrder.LITTLE_ENDIAN));
  }

  /** The HELLO a connecting rank sends. */
  static byte[] hello(int groupSize, int group, int from, int to) {
    byte[] nonce = nonce();
    ByteBuffer b = ByteBuffer.allocate(HELLO_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    b.putInt(MAGIC).putInt(VERSION).putInt(groupSize).putInt(group).putInt(from).putInt(to)
        .put(nonce);
    return b.array();
  }

  /** What a HELLO says, once its magic and version are checked. */
  record Hello(int groupSize, int group, int from, int to) {
  }

  static Hello parseHello(byte[] hello) throws IOException {
    ByteBuffer b = ByteBuffer.wrap(hello).order(ByteOrder.LITTLE_ENDIAN);
    if (b.getInt() != MAGIC || b.getInt() != VERSION) {
      throw new IOException("not an expert channel handshake of version " + VERSION);
    }
    return new Hello(b.getInt(), b.getInt(), b.getInt(), b.getInt());
  }

  static byte[] nonce() {
    byte[] nonce = new byte[NONCE_BYTES];
    RANDOM.nextBytes(nonce);
    return nonce;
  }

  /** HMAC-SHA256(secret, role || hello || nonce). */
  static byte[] proof(String secret, String role, byte[] hello, byte[] nonce) {
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret == null ? NO_SECRET
          : secret.getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
      mac.update(role.getBytes(StandardCharsets.UTF_8));
      mac.update(hello);
      return mac.doFinal(nonce);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("HmacSHA256 is part of every JDK", e);
    }
  }

  /** Compares in constant time, so that timing tells nothing of the expected proof. */
  static boolean matches(byte[] expected, byte[] given) {
    return MessageDigest.isEqual(expected, given);
  }

  static byte[] readExactly(InputStream in, int bytes) throws IOException {
    byte[] b = new byte[bytes];
    new DataInputStream(in).readFully(b);
    return b;
  }
}
