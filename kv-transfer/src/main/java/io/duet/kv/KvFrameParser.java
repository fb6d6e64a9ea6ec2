package io.duet.kv;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.vertx.core.Handler;
import io.vertx.core.internal.buffer.BufferInternal;
import io.vertx.core.internal.net.NetSocketInternal;
import io.vertx.core.net.NetSocket;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * Cuts a TCP byte stream into {@link KvFrame}s without copying it: a frame's payload is a view
 * of the network buffers it arrived in, which the parser keeps (retains) until the frame
 * handler returns, and its CRC32C is computed over them in place. A KV chunk is thus copied
 * once on its way from the socket into the KV cache, by the import itself.
 *
 * <p>A received payload is valid only while the frame handler runs: its buffers go back to
 * Netty's pool afterwards, so a handler copies what must outlive it. A frame with a bad CRC or
 * a length above the parser's cap goes to the error handler and stops the parser; the
 * connection should then be closed, since framing can no longer be trusted. The cap is what
 * keeps a peer from making the parser gather a huge frame: the KV server takes small frames
 * only ({@link KvFrame#MAX_CLIENT_PAYLOAD}).
 */
public final class KvFrameParser {

  private final Handler<KvFrame> frameHandler;
  private final Handler<Throwable> errorHandler;
  private final int maxPayload;
  /** Type and length of the frame being read: small, so gathered in an array. */
  private final byte[] head = new byte[KvFrame.HEAD_BYTES];
  private int headFilled;
  /** The payload being gathered, as slices of the reads it comes in; null between frames. */
  private CompositeByteBuf payload;
  private int payloadLength;
  /** The frame's CRC32C as sent, after its payload. */
  private final byte[] trailer = new byte[KvFrame.CRC_BYTES];
  private int trailerFilled;
  /** Of the frame being read, over its head and payload so far. */
  private final CRC32C crc = new CRC32C();
  private boolean failed;

  /** @param maxPayload the largest payload accepted; a longer frame is an error */
  public KvFrameParser(int maxPayload, Handler<KvFrame> frameHandler,
      Handler<Throwable> errorHandler) {
    this.maxPayload = maxPayload;
    this.frameHandler = frameHandler;
    this.errorHandler = errorHandler;
  }

  /**
   * A parser of what {@code socket} receives, fed Netty's read buffers themselves: the
   * socket's ordinary data handler would get each read copied to the heap first. When the
   * socket ends, the parser lets go of a frame it was still gathering.
   */
  public static KvFrameParser attach(NetSocket socket, int maxPayload,
      Handler<KvFrame> frameHandler, Handler<Throwable> errorHandler) {
    return attach(socket, maxPayload, frameHandler, errorHandler, parser -> { });
  }

  /** As {@link #attach(NetSocket, int, Handler, Handler)}, calling {@code afterRead} after each read. */
  public static KvFrameParser attach(NetSocket socket, int maxPayload,
      Handler<KvFrame> frameHandler, Handler<Throwable> errorHandler,
      Handler<KvFrameParser> afterRead) {
    KvFrameParser parser = new KvFrameParser(maxPayload, frameHandler, errorHandler);
    ((NetSocketInternal) socket).messageHandler(message -> {
      ByteBuf bytes = (ByteBuf) message; // what a TCP pipeline delivers, TLS decrypted or not
      try {
        parser.handle(bytes);
      } finally {
        bytes.release();
      }
      afterRead.handle(parser);
    });
    socket.endHandler(v -> parser.close());
    return parser;
  }

  /** Whether part of a frame has arrived and the rest has not. */
  public boolean midFrame() {
    return !failed && (headFilled > 0 || payload != null);
  }

  /** Parses the readable bytes of one read; retains the parts it keeps, releases none. */
  public void handle(ByteBuf bytes) {
    int at = bytes.readerIndex();
    int end = bytes.writerIndex();
    while (at < end && !failed) {
      if (payload == null) {
        int take = Math.min(KvFrame.HEAD_BYTES - headFilled, end - at);
        bytes.getBytes(at, head, headFilled, take);
        headFilled += take;
        at += take;
        if (headFilled == KvFrame.HEAD_BYTES) {
          startFrame();
        }
      } else if (payload.writerIndex() < payloadLength) {
        int take = Math.min(payloadLength - payload.writerIndex(), end - at);
        for (ByteBuffer piece : bytes.nioBuffers(at, take)) {
          crc.update(piece);
        }
        payload.addComponent(true, bytes.retainedSlice(at, take));
        at += take;
      } else {
        int take = Math.min(KvFrame.CRC_BYTES - trailerFilled, end - at);
        bytes.getBytes(at, trailer, trailerFilled, take);
        trailerFilled += take;
        at += take;
        if (trailerFilled == KvFrame.CRC_BYTES) {
          finishFrame();
        }
      }
    }
  }

  /** Releases the frame being gathered, if any (the connection is gone). Idempotent. */
  public void close() {
    if (payload != null) {
      payload.release();
      payload = null;
    }
  }

  private void startFrame() {
    headFilled = 0;
    int length = KvFrame.getInt(head, 1);
    if (length < 0 || length > maxPayload) {
      fail(new KvProtocolException("frame length " + length + " out of range (at most "
          + maxPayload + ")"));
      return;
    }
    payloadLength = length;
    // As many components as reads: a composite that merged them would copy the payload.
    payload = Unpooled.compositeBuffer(Integer.MAX_VALUE);
    crc.reset();
    crc.update(head, 0, KvFrame.HEAD_BYTES);
  }

  private void finishFrame() {
    trailerFilled = 0;
    CompositeByteBuf complete = payload;
    payload = null;
    try {
      if ((int) crc.getValue() != KvFrame.getInt(trailer, 0)) {
        fail(new KvProtocolException("frame CRC32C mismatch"));
        return;
      }
      KvFrame.Type type;
      try {
        type = KvFrame.Type.of(head[0]);
      } catch (KvProtocolException e) {
        fail(e);
        return;
      }
      frameHandler.handle(new KvFrame(type, BufferInternal.buffer(complete)));
    } finally {
      complete.release();
    }
  }

  private void fail(Throwable error) {
    failed = true;
    errorHandler.handle(error);
  }
}
