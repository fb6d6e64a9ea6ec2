package io.duet.cluster.transfer;

import io.vertx.core.Handler;
import io.vertx.core.buffer.Buffer;

/**
 * Cuts a TCP byte stream into {@link KvFrame}s. Each frame is copied once, from the network
 * buffers into an array of its exact size, and handed on as a view of that array. A frame
 * with a bad CRC or an impossible length goes to the error handler and stops the parser; the
 * connection should then be closed, since framing can no longer be trusted.
 */
public final class KvFrameParser implements Handler<Buffer> {

  private final Handler<KvFrame> frameHandler;
  private final Handler<Throwable> errorHandler;
  private final byte[] head = new byte[KvFrame.HEAD_BYTES];
  private int headFilled;
  private byte[] frame;
  private int frameFilled;
  private boolean failed;

  public KvFrameParser(Handler<KvFrame> frameHandler, Handler<Throwable> errorHandler) {
    this.frameHandler = frameHandler;
    this.errorHandler = errorHandler;
  }

  @Override
  public void handle(Buffer bytes) {
    int at = 0;
    int end = bytes.length();
    while (at < end && !failed) {
      if (frame == null) {
        int take = Math.min(KvFrame.HEAD_BYTES - headFilled, end - at);
        bytes.getBytes(at, at + take, head, headFilled);
        headFilled += take;
        at += take;
        if (headFilled == KvFrame.HEAD_BYTES) {
          startFrame();
        }
      } else {
        int take = Math.min(frame.length - frameFilled, end - at);
        bytes.getBytes(at, at + take, frame, frameFilled);
        frameFilled += take;
        at += take;
        if (frameFilled == frame.length) {
          finishFrame();
        }
      }
    }
  }

  private void startFrame() {
    int length = KvFrame.getInt(head, 1);
    if (length < 0 || length > KvFrame.MAX_PAYLOAD) {
      fail(new KvProtocolException("frame length " + length + " out of range"));
      return;
    }
    frame = new byte[KvFrame.HEAD_BYTES + length + KvFrame.CRC_BYTES];
    System.arraycopy(head, 0, frame, 0, KvFrame.HEAD_BYTES);
    frameFilled = KvFrame.HEAD_BYTES;
    headFilled = 0;
  }

  private void finishFrame() {
    byte[] complete = frame;
    frame = null;
    int length = complete.length - KvFrame.HEAD_BYTES - KvFrame.CRC_BYTES;
    if (KvFrame.crc(complete, KvFrame.HEAD_BYTES + length)
        != KvFrame.getInt(complete, KvFrame.HEAD_BYTES + length)) {
      fail(new KvProtocolException("frame CRC32C mismatch"));
      return;
    }
    KvFrame.Type type;
    try {
      type = KvFrame.Type.of(complete[0]);
    } catch (KvProtocolException e) {
      fail(e);
      return;
    }
    frameHandler.handle(new KvFrame(type, complete, KvFrame.HEAD_BYTES, length));
  }

  private void fail(Throwable error) {
    failed = true;
    errorHandler.handle(error);
  }
}
