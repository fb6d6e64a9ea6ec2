package io.duet.cluster.transfer;

import io.vertx.core.Handler;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.parsetools.RecordParser;

/**
 * Cuts a TCP byte stream into {@link KvFrame}s: a fixed-size head, then the payload and CRC.
 * A frame with a bad CRC or an oversized length goes to the error handler; after that the
 * connection should be closed, since framing can no longer be trusted.
 */
public final class KvFrameParser implements Handler<Buffer> {

  private final RecordParser parser;
  private final Handler<KvFrame> frameHandler;
  private final Handler<Throwable> errorHandler;
  private Buffer head;

  public KvFrameParser(Handler<KvFrame> frameHandler, Handler<Throwable> errorHandler) {
    this.frameHandler = frameHandler;
    this.errorHandler = errorHandler;
    this.parser = RecordParser.newFixed(KvFrame.HEAD_BYTES, this::onRecord);
  }

  @Override
  public void handle(Buffer bytes) {
    parser.handle(bytes);
  }

  private void onRecord(Buffer record) {
    if (head == null) {
      int length = record.getInt(1);
      if (length < 0 || length > KvFrame.MAX_PAYLOAD) {
        errorHandler.handle(new KvProtocolException("frame length " + length + " out of range"));
        return;
      }
      head = record.copy();
      parser.fixedSizeMode(length + KvFrame.CRC_BYTES);
      return;
    }
    Buffer frameHead = head;
    head = null;
    parser.fixedSizeMode(KvFrame.HEAD_BYTES);
    KvFrame decoded;
    try {
      decoded = KvFrame.decode(frameHead, record);
    } catch (KvProtocolException e) {
      errorHandler.handle(e);
      return;
    }
    frameHandler.handle(decoded);
  }
}
