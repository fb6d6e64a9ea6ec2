package io.duet.kv;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.vertx.core.buffer.Buffer;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The parser cuts frames out of reads of any size without copying them: a payload comes as
 * views of the direct buffers it arrived in, and every buffer the parser kept is let go once
 * its frame was handled, refused, or abandoned with the connection.
 */
class KvFrameParserTest {

  private static final byte[] CHUNK = new byte[10_000];

  static {
    new Random(7).nextBytes(CHUNK);
  }

  /** What the frame handler saw: types, payloads copied out, and how many pieces each had. */
  private final List<KvFrame.Type> types = new ArrayList<>();
  private final List<byte[]> payloads = new ArrayList<>();
  private final List<ByteBuffer[]> pieces = new ArrayList<>();
  private final List<Throwable> errors = new ArrayList<>();
  private final KvFrameParser parser = new KvFrameParser(KvFrame.MAX_PAYLOAD, frame -> {
    types.add(frame.type());
    payloads.add(frame.payload().getBytes());
    pieces.add(frame.payloadBuffers());
  }, errors::add);

  private static byte[] wire(KvFrame... frames) {
    Buffer wire = Buffer.buffer();
    for (KvFrame frame : frames) {
      wire.appendBuffer(frame.encode());
    }
    return wire.getBytes();
  }

  private static byte[] pullChunkEnd() {
    return wire(KvFrame.text(KvFrame.Type.PULL, "t1"), KvFrame.of(KvFrame.Type.CHUNK, CHUNK),
        KvFrame.empty(KvFrame.Type.END));
  }

  /**
   * Hands {@code bytes[from, to)} to the parser in direct buffers of {@code readBytes}, as
   * Netty's reads are; returns them, still referenced by the caller.
   */
  private List<ByteBuf> feed(byte[] bytes, int from, int to, int readBytes) {
    List<ByteBuf> reads = new ArrayList<>();
    for (int at = from; at < to; at += readBytes) {
      int length = Math.min(readBytes, to - at);
      ByteBuf read = Unpooled.directBuffer(length).writeBytes(bytes, at, length);
      parser.handle(read);
      reads.add(read);
    }
    return reads;
  }

  /** Asserts that only the caller still holds each read, then releases it. */
  private static void assertOnlyTheCallerHolds(List<ByteBuf> reads) {
    for (ByteBuf read : reads) {
      assertEquals(1, read.refCnt(), "the parser let go of every read it kept");
      read.release();
    }
  }

  @Test
  void framesSplitAcrossReadsOfAnySizeArriveWholeAsViewsOfTheReads() {
    byte[] bytes = pullChunkEnd();
    for (int readBytes : new int[] {1, 3, 7, 4096, bytes.length}) {
      types.clear();
      payloads.clear();
      pieces.clear();
      assertOnlyTheCallerHolds(feed(bytes, 0, bytes.length, readBytes));

      assertEquals(List.of(KvFrame.Type.PULL, KvFrame.Type.CHUNK, KvFrame.Type.END), types);
      assertArrayEquals("t1".getBytes(), payloads.get(0));
      assertArrayEquals(CHUNK, payloads.get(1));
      assertEquals(0, payloads.get(2).length);
      ByteBuffer[] chunkPieces = pieces.get(1);
      assertEquals((CHUNK.length + readBytes - 1) / readBytes, chunkPieces.length,
          () -> "one piece per read the chunk spans, with reads of " + readBytes);
      for (ByteBuffer piece : chunkPieces) {
        assertTrue(piece.isDirect(), "a piece is a view of a read, not a heap copy");
      }
    }
    assertEquals(List.of(), errors);
  }

  @Test
  void aDamagedFrameStopsTheParserAndItHoldsNoRead() {
    byte[] bytes = pullChunkEnd();
    int pullBytes = KvFrame.HEAD_BYTES + 2 + KvFrame.CRC_BYTES;
    bytes[pullBytes + KvFrame.HEAD_BYTES + 5_000] ^= 0x01;
    assertOnlyTheCallerHolds(feed(bytes, 0, bytes.length, 1_000));

    assertEquals(List.of(KvFrame.Type.PULL), types, "nothing after the damaged frame");
    assertEquals(1, errors.size());
    assertTrue(errors.get(0).getMessage().contains("CRC32C"), errors.get(0).getMessage());
  }

  @Test
  void anImpossibleLengthIsRefused() {
    byte[] bytes = {(byte) KvFrame.Type.CHUNK.code(), (byte) 0x7f, 0, 0, 0};
    assertOnlyTheCallerHolds(feed(bytes, 0, bytes.length, bytes.length));
    assertEquals(1, errors.size());
    assertTrue(errors.get(0).getMessage().contains("out of range"), errors.get(0).getMessage());
  }

  @Test
  void closingMidFrameLetsGoOfTheReadsItKept() {
    byte[] bytes = wire(KvFrame.of(KvFrame.Type.CHUNK, CHUNK));
    List<ByteBuf> reads = feed(bytes, 0, bytes.length / 2, 1_000);
    assertEquals(2, reads.get(reads.size() - 1).refCnt(), "kept for the frame being gathered");

    parser.close();
    parser.close();
    assertOnlyTheCallerHolds(reads);
    assertEquals(List.of(), types);
  }
}
