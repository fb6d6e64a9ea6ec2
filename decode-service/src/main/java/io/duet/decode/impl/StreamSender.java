package io.duet.decode.impl;

import io.duet.contract.DecodeEvent;
import io.duet.contract.DecodeRequest;
import io.vertx.core.eventbus.EventBus;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The event-bus side of one request's token stream, with credit-based flow control: it sends
 * at most as many {@link DecodeEvent}s as the requester granted; while it has no credit, new
 * text and tokens are coalesced into the next event, so decoding never waits for a slow
 * client and the requester's consumer never overflows. A {@link DecodeRequest#coalesce}d
 * stream also holds its text while its requester has some and the last event is recent, so a
 * non-streamed answer costs a few events, not one per token. Event-loop confined.
 */
final class StreamSender {

  private static final long COALESCED_EVENT_NANOS =
      TimeUnit.MILLISECONDS.toNanos(DecodeRequest.COALESCED_EVENT_MILLIS);

  private final EventBus eventBus;
  private final String requestId;
  private final String address;
  private final int promptTokens;
  private int credits;
  private int sequence;
  private final StringBuilder text = new StringBuilder();
  private int tokens;
  private int completionTokens;
  private String finishReason;
  private String failure;
  private String error;
  private boolean closed;
  /** Whether the first token's text already reached the client another way (still to count). */
  private boolean firstTokenSent;
  private final boolean coalesce;
  /** Whether the requester has text of the request: from the prefill result, or an event. */
  private boolean requesterHasText;
  /** The time in nanoseconds ({@link System#nanoTime} but in tests). */
  private final LongSupplier clock;
  private long lastEventNanos;
  /** The decode instance's timing, for the first event; -1 until known and after it went. */
  private long queueMicros = -1;
  private long kvPullMicros = -1;

  /**
   * @param firstTokenSent the requester streamed the first token's text from the prefill
   *     result: the first delta is counted in {@code completionTokens} but not sent
   * @param coalesce the requester needs no event per token ({@link DecodeRequest#coalesce})
   */
  StreamSender(EventBus eventBus, String requestId, String address, int promptTokens,
      int credits, boolean firstTokenSent, boolean coalesce) {
    this(eventBus, requestId, address, promptTokens, credits, firstTokenSent, coalesce,
        System::nanoTime);
  }

  /** @param clock the time in nanoseconds */
  StreamSender(EventBus eventBus, String requestId, String address, int promptTokens,
      int credits, boolean firstTokenSent, boolean coalesce, LongSupplier clock) {
    this.clock = clock;
    this.lastEventNanos = clock.getAsLong();
    this.eventBus = eventBus;
    this.requestId = requestId;
    this.address = address;
    this.promptTokens = promptTokens;
    this.credits = credits;
    this.firstTokenSent = firstTokenSent;
    this.requesterHasText = firstTokenSent;
    this.coalesce = coalesce;
  }

  void add(String delta, int newTokens, String finish) {
    completionTokens += newTokens;
    if (firstTokenSent) {
      firstTokenSent = false;
    } else {
      text.append(delta);
      tokens += newTokens;
    }
    if (finish != null) {
      finishReason = finish;
    } else if (holds()) {
      return;
    }
    flush();
  }

  /**
   * Whether new text may wait for the next one: the stream coalesces, the requester already
   * has text (so its time to first token does not wait), and the last event is recent.
   */
  private boolean holds() {
    return coalesce && requesterHasText
        && clock.getAsLong() - lastEventNanos < COALESCED_EVENT_NANOS;
  }

  /** How long the request waited here, then pulled its KV; goes out with the next event. */
  void stages(long waitedMicros, long pulledMicros) {
    queueMicros = waitedMicros;
    kvPullMicros = pulledMicros;
  }

  void fail(String failureName, String message) {
    failure = failureName;
    error = message;
    flush();
  }

  void credit(int granted) {
    credits += granted;
    flush();
  }

  /** True once the last event went out. */
  boolean isClosed() {
    return closed;
  }

  private void flush() {
    boolean terminal = finishReason != null || failure != null;
    if (closed || credits <= 0 || (tokens == 0 && text.length() == 0 && !terminal)) {
      return;
    }
    credits--;
    eventBus.send(address, new DecodeEvent(requestId, sequence++, text.toString(), tokens,
        completionTokens, promptTokens, finishReason, failure, error, queueMicros, kvPullMicros)
        .toJson());
    lastEventNanos = clock.getAsLong();
    requesterHasText |= tokens > 0 || text.length() > 0;
    queueMicros = -1;
    kvPullMicros = -1;
    text.setLength(0);
    tokens = 0;
    closed = terminal;
  }
}
