package io.duet.decode;

import io.duet.kv.KvFrame;
import io.duet.kv.KvFrameParser;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A stand-in for a prefill instance's KV endpoint: a raw NetServer that speaks the frame
 * protocol and answers each PULL as the test's behaviour says (a truncated stream, a damaged
 * chunk, silence). It records what the decode side sent and when it closed the connection.
 */
final class FakePrefill {

  /** What to do when a PULL arrives. */
  interface Behaviour {
    void onPull(NetSocket socket, String transferId);
  }

  private final NetServer server;
  /** Frame types the decode instance sent, in order. */
  final List<KvFrame.Type> received = new CopyOnWriteArrayList<>();
  private final Promise<NetSocket> pulled = Promise.promise();
  private final Promise<Void> connectionClosed = Promise.promise();

  private FakePrefill(Vertx vertx, Behaviour behaviour) {
    server = vertx.createNetServer(new NetServerOptions().setHost("127.0.0.1").setPort(0))
        .connectHandler(socket -> {
          socket.closeHandler(v -> connectionClosed.tryComplete());
          KvFrameParser.attach(socket, KvFrame.MAX_CLIENT_PAYLOAD, frame -> {
            received.add(frame.type());
            if (frame.type() == KvFrame.Type.PULL) {
              // the claim's first line; a fake checks no proof
              behaviour.onPull(socket, frame.payloadText().split("\n")[0]);
              pulled.tryComplete(socket);
            }
          }, error -> socket.close());
          write(socket, KvFrame.Type.NONCE, new byte[16]);
        });
  }

  static Future<FakePrefill> start(Vertx vertx, Behaviour behaviour) {
    FakePrefill fake = new FakePrefill(vertx, behaviour);
    return fake.server.listen().map(s -> fake);
  }

  /** The socket of the first PULL, once the behaviour answered it. */
  Future<NetSocket> pulled() {
    return pulled.future();
  }

  /** Completes when the first connection closed (by either side). */
  Future<Void> connectionClosed() {
    return connectionClosed.future();
  }

  int port() {
    return server.actualPort();
  }

  Future<Void> close() {
    return server.close();
  }

  /** Writes one frame. */
  static void write(NetSocket socket, KvFrame.Type type, byte[] payload) {
    socket.write(KvFrame.of(type, payload).encode());
  }
}
