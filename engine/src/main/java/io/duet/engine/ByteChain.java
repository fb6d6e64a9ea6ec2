package io.duet.engine;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * Bytes spread over consecutive buffers, read in place, little-endian: a KV block as it arrived
 * from the network (reads end anywhere, so a value may be split between two buffers). Reading
 * never moves the buffers' positions; a chain of views costs no copy.
 *
 * <p>Reading is sequential from a position set by {@link #seek}; not thread-safe.
 */
public final class ByteChain {

  private final ByteBuffer[] pieces;
  private final long length;
  /** Where reading goes on: a piece, and a byte offset in it. */
  private int piece;
  private int offset;

  private ByteChain(ByteBuffer[] pieces) {
    this.pieces = pieces;
    long total = 0;
    for (ByteBuffer p : pieces) {
      total += p.limit();
    }
    this.length = total;
  }

  /** The remaining bytes of {@code buffers}, in order, as one chain. */
  public static ByteChain of(ByteBuffer... buffers) {
    ByteBuffer[] views = new ByteBuffer[buffers.length];
    for (int i = 0; i < buffers.length; i++) {
      views[i] = buffers[i].slice().order(ByteOrder.LITTLE_ENDIAN);
    }
    return new ByteChain(views);
  }

  public long length() {
    return length;
  }

  /** Bytes {@code [from, to)} of this chain as a chain of their own (views, no copy). */
  public ByteChain slice(long from, long to) {
    if (from < 0 || to < from || to > length) {
      throw new IndexOutOfBoundsException("[" + from + ", " + to + ") of " + length + " bytes");
    }
    java.util.List<ByteBuffer> views = new java.util.ArrayList<>();
    long start = 0;
    for (ByteBuffer p : pieces) {
      long end = start + p.limit();
      long a = Math.max(from, start);
      long b = Math.min(to, end);
      if (a < b) {
        views.add(p.slice((int) (a - start), (int) (b - a)).order(ByteOrder.LITTLE_ENDIAN));
      }
      start = end;
    }
    return new ByteChain(views.toArray(ByteBuffer[]::new));
  }

  /** CRC32C of the first {@code bytes} bytes. */
  public int crc32c(long bytes) {
    CRC32C crc = new CRC32C();
    long left = bytes;
    for (ByteBuffer p : pieces) {
      int take = (int) Math.min(left, p.limit());
      crc.update(p.duplicate().limit(take));
      left -= take;
    }
    return (int) crc.getValue();
  }

  /** Reading goes on from byte {@code at}. */
  public ByteChain seek(long at) {
    if (at < 0 || at > length) {
      throw new IndexOutOfBoundsException(at + " of " + length + " bytes");
    }
    piece = 0;
    while (piece < pieces.length && at >= pieces[piece].limit()) {
      at -= pieces[piece].limit();
      piece++;
    }
    offset = (int) at;
    return this;
  }

  /** The next four bytes as a little-endian int. */
  public int getInt() {
    int value = 0;
    for (int i = 0; i < Integer.BYTES; i++) {
      value |= (nextByte() & 0xff) << (8 * i);
    }
    return value;
  }

  private byte nextByte() {
    while (offset == pieces[piece].limit()) {
      piece++;
      offset = 0;
    }
    return pieces[piece].get(offset++);
  }

  /** Copies the next {@code count} floats into {@code destination} from {@code at}. */
  public void getFloats(float[] destination, int at, int count) {
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
