package io.duet.bench.impl;

import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import io.vertx.core.parsetools.RecordParser;

/**
 * The baseline for the KV path: a Vert.x NetServer pushes a requested number of bytes to a
 * NetClient over 127.0.0.1 in 256 KiB writes, pausing on a full write queue until it drains.
 * The direction (server to client) and socket options are those of the KV transfer server and
 * the decode side's puller; the two ends run on different event loops, as P and D do.
 */
public final class RawLoopback {

  public static final int WRITE_BYTES = 256 << 10;

  private final Vertx vertx;
  private final Buffer block = Buffer.buffer(new byte[WRITE_BYTES]);
  // Kept in fields: Vert.x may close a client that nothing references.
  private NetServer server;
  private NetClient client;
  private NetSocket socket;
  private Context clientContext;
  private long expected;
  private long received;
  private long startNanos;
  private Promise<Long> current;

  public RawLoopback(Vertx vertx) {
    this.vertx = vertx;
  }

  /** Starts the server on one event loop and connects the client from another. */
  public Future<Void> start() {
    Context serverContext = vertx.getOrCreateContext();
    clientContext = vertx.getOrCreateContext();
    Promise<Integer> listening = Promise.promise();
    serverContext.runOnContext(v -> {
      server = vertx.createNetServer(new NetServerOptions().setHost("127.0.0.1").setPort(0)
          .setTcpNoDelay(true).setSendBufferSize(4 << 20).setReceiveBufferSize(1 << 20));
      server.connectHandler(this::serve).listen().map(NetServer::actualPort)
          .onComplete(listening);
    });
    return listening.future().compose(port -> {
      Promise<Void> connected = Promise.promise();
      clientContext.runOnContext(v -> {
        client = vertx.createNetClient(new NetClientOptions().setTcpNoDelay(true)
            .setReceiveBufferSize(4 << 20));
        client.connect(port, "127.0.0.1").onSuccess(s -> {
          socket = s;
          s.handler(this::onBytes);
        }).<Void>mapEmpty().onComplete(connected);
      });
      return connected.future();
    });
  }

  /** Moves {@code bytes} from server to client; the result is the nanoseconds it took. */
  public Future<Long> transfer(long bytes) {
    Promise<Long> done = Promise.promise();
    clientContext.runOnContext(v -> {
      current = done;
      expected = bytes;
      received = 0;
      startNanos = System.nanoTime();
      socket.write(Buffer.buffer(8).appendLong(bytes));
    });
    return done.future();
  }

  private void onBytes(Buffer bytes) {
    received += bytes.length();
    if (received >= expected && current != null) {
      Promise<Long> done = current;
      current = null;
      done.complete(System.nanoTime() - startNanos);
    }
  }

  private void serve(NetSocket peer) {
    peer.handler(RecordParser.newFixed(8, request -> push(peer, request.getLong(0))));
  }

  private void push(NetSocket peer, long remaining) {
    long left = remaining;
    while (left > 0) {
      int n = (int) Math.min(WRITE_BYTES, left);
      peer.write(n == WRITE_BYTES ? block : block.slice(0, n));
      left -= n;
      if (peer.writeQueueFull()) {
        long rest = left;
        peer.drainHandler(v -> {
          peer.drainHandler(null);
          push(peer, rest);
        });
        return;
      }
    }
  }

  public Future<Void> close() {
    Future<Void> clientClosed = client == null ? Future.succeededFuture() : client.close();
    Future<Void> serverClosed = server == null ? Future.succeededFuture() : server.close();
    return Future.all(clientClosed, serverClosed).mapEmpty();
  }
}
