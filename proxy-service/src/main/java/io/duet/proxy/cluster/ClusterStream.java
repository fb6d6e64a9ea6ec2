package io.duet.proxy.cluster;

import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.duet.proxy.CompletionException;
import io.duet.proxy.CompletionStream;
import io.duet.proxy.TtftStages;
import io.vertx.core.Handler;
import java.util.ArrayDeque;

/**
 * The proxy's end of one request's decode stream: buffers events while the HTTP side is paused
 * and hands credit back to the decode instance as events are consumed, so neither side can be
 * flooded. Event-loop confined; {@link StreamRelay} feeds it, {@link ClusterBackend} ends it.
 */
final class ClusterStream implements CompletionStream {

  /** What the backend does when the stream is cancelled or grants credit. */
  interface Control {
    void grant(ClusterStream stream, int credits);

    void cancel(ClusterStream stream);
  }

  final String requestId;
  private final Control control;
  private final int creditBatch;
  private final ArrayDeque<DecodeEvent> pending = new ArrayDeque<>();
  private Handler<DecodeEvent> handler;
  private Handler<Throwable> exceptionHandler;
  private Handler<Void> endHandler;
  private long demand = Long.MAX_VALUE;
  private int consumedSinceGrant;
  private boolean ended;
  private boolean cancelled;
  private boolean anyEvent;
  /** The event made from the prefill result, which the decode instance did not send. */
  private DecodeEvent fromPrefill;
  /** That event while it waits for a decode instance to take the request. */
  private DecodeEvent heldFirst;
  /** Whether a decode instance took the request. */
  private boolean decodeTook;
  /**
   * Whether decode events wait for the first token from the prefill result: a decode instance
   * pulling a streamed KV gets the first token at the stream's end, and may send the second
   * before the prefill result reaches the proxy.
   */
  private boolean awaitingFirst;
  private Throwable failure;
  private TtftStages stages = TtftStages.NONE;

  ClusterStream(String requestId, int credits, Control control) {
    this.requestId = requestId;
    this.control = control;
    this.creditBatch = Math.max(1, credits / 2);
  }

  boolean isDone() {
    return ended || cancelled || failure != null;
  }

  /** Whether a decode event came for the client: from then on, it may have seen a token. */
  boolean hasEvents() {
    return anyEvent;
  }

  /** The prefill instance's timing, from its result. */
  void prefilled(long queueMicros, long prefillMicros) {
    stages = stages.withPrefill(queueMicros, prefillMicros);
  }

  @Override
  public TtftStages ttftStages() {
    return stages;
  }

  /**
   * The first token's event, made from the prefill result: it is not a decode event, so it
   * neither counts as one ({@link #hasEvents}) nor earns the decode instance credit. One that
   * ends the request goes to the client at once; any other is held until a decode instance has
   * taken the request ({@link #decodeTook}) or sends its first event, so that a request
   * no decode instance can take still fails as a whole (a 503 the client may send again), not
   * as a stream cut after its first token.
   */
  void firstToken(DecodeEvent event) {
    if (isDone()) {
      return;
    }
    awaitingFirst = false;
    heldFirst = event;
    if (event.isLast() || decodeTook || anyEvent) {
      releaseFirstToken();
    }
  }

  /** Decode events wait for {@link #firstToken} (the request's KV is streamed). */
  void awaitFirstToken() {
    awaitingFirst = heldFirst == null && fromPrefill == null;
  }

  /**
   * A decode instance took the request: the first token goes to the client now, or as soon as
   * it comes (a decode instance may take a request before its prefill has ended).
   */
  void decodeTook() {
    decodeTook = true;
    releaseFirstToken();
  }

  /** Sends the client the held first token, if any. */
  private void releaseFirstToken() {
    if (heldFirst != null && !isDone()) {
      fromPrefill = heldFirst;
      heldFirst = null;
      pending.addFirst(fromPrefill); // before any decode event that came early
      drain();
    }
  }

  /** An event from the decode instance. */
  void deliver(DecodeEvent event) {
    if (isDone()) {
      return;
    }
    releaseFirstToken();
    anyEvent = true;
    if (event.queueMicros() >= 0) {
      stages = stages.withDecode(event.queueMicros(), event.kvPullMicros());
    }
    pending.add(event);
    drain();
  }

  /** The job failed before or between events. */
  void fail(Failure kind, String message) {
    if (isDone()) {
      return;
    }
    failure = new CompletionException(kind, message);
    pending.clear();
    heldFirst = null;
    if (exceptionHandler != null) {
      exceptionHandler.handle(failure);
    }
  }

  private void drain() {
    while (!awaitingFirst && demand > 0 && !pending.isEmpty() && !cancelled) {
      DecodeEvent event = pending.poll();
      if (demand != Long.MAX_VALUE) {
        demand--;
      }
      if (handler != null) {
        handler.handle(event);
      }
      if (event.isLast()) {
        ended = true;
        if (endHandler != null) {
          endHandler.handle(null);
        }
        return;
      }
      if (event != fromPrefill && ++consumedSinceGrant >= creditBatch) {
        control.grant(this, consumedSinceGrant);
        consumedSinceGrant = 0;
      }
    }
  }

  @Override
  public ClusterStream handler(Handler<DecodeEvent> value) {
    this.handler = value;
    return this;
  }

  @Override
  public ClusterStream exceptionHandler(Handler<Throwable> value) {
    this.exceptionHandler = value;
    if (failure != null && value != null) {
      value.handle(failure);
    }
    return this;
  }

  @Override
  public ClusterStream endHandler(Handler<Void> value) {
    this.endHandler = value;
    return this;
  }

  @Override
  public ClusterStream pause() {
    demand = 0;
    return this;
  }

  @Override
  public ClusterStream resume() {
    return fetch(Long.MAX_VALUE);
  }

  @Override
  public ClusterStream fetch(long amount) {
    demand = amount == Long.MAX_VALUE || demand + amount < 0 ? Long.MAX_VALUE : demand + amount;
    drain();
    return this;
  }

  @Override
  public void cancel() {
    if (!isDone()) {
      cancelled = true;
      pending.clear();
      control.cancel(this);
    }
  }
}
