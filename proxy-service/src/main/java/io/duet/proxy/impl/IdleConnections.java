package io.duet.proxy.impl;

import io.vertx.core.Vertx;
import io.vertx.core.http.HttpConnection;
import io.vertx.core.http.HttpServerRequest;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * Closes an HTTP connection that has had no request in progress for the idle timeout: between
 * requests only. Vert.x's own idle timeout also counts the time an answer is being made, so it
 * would cut a completion that is not streamed, which writes nothing until it is done (minutes,
 * for a long one). Each connection is looked at every quarter of the timeout, so it is closed
 * between one and one and a quarter timeouts after its last answer ended (or, without a request,
 * after it was accepted). Confined to the event loop of the server whose connections it watches.
 */
public final class IdleConnections {

  private final Vertx vertx;
  private final long timeoutNanos;
  private final Map<HttpConnection, Idleness> connections = new IdentityHashMap<>();

  /** One connection: its latest request and since when it has had none in progress. */
  private final class Idleness {
    final HttpConnection connection;
    final long timer;
    /** Its latest request; HTTP/1.1 answers in order, so when it is answered all are. */
    HttpServerRequest latest;
    long idleSince = System.nanoTime();

    Idleness(HttpConnection connection) {
      this.connection = connection;
      this.timer = vertx.setPeriodic(Math.max(1, timeoutNanos / 4_000_000), t -> check());
    }

    void check() {
      boolean busy = latest != null && !latest.response().ended()
          && !latest.response().closed();
      long now = System.nanoTime();
      if (busy || idleSince < 0) {
        idleSince = busy ? -1 : now;
      } else if (now - idleSince >= timeoutNanos) {
        connection.close();
      }
    }
  }

  /** @param timeoutSeconds 0: connections are never closed for being idle */
  public IdleConnections(Vertx vertx, int timeoutSeconds) {
    this.vertx = vertx;
    this.timeoutNanos = timeoutSeconds * 1_000_000_000L;
  }

  /** A connection was accepted: it is idle until its first request. */
  public void opened(HttpConnection connection) {
    if (timeoutNanos > 0) {
      connections.put(connection, new Idleness(connection));
    }
  }

  /** The connection closed: nothing more to watch. */
  public void closed(HttpConnection connection) {
    Idleness idleness = connections.remove(connection);
    if (idleness != null) {
      vertx.cancelTimer(idleness.timer);
    }
  }

  /** A request began: its connection is busy until its response has ended. */
  public void requestStarted(HttpServerRequest request) {
    Idleness idleness = connections.get(request.connection());
    if (idleness != null) {
      idleness.latest = request;
      idleness.idleSince = -1;
    }
  }
}
