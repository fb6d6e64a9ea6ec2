package io.duet.prefill.impl;

import io.duet.cluster.transfer.KvFrame;
import io.duet.cluster.transfer.KvFrameParser;
import io.duet.engine.KvExport;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves leased KV to decode instances over TCP (see {@link KvFrame} for the protocol). Chunks
 * are encoded one at a time as the socket drains, so a transfer never holds more than the
 * socket's write queue in memory.
 */
public final class KvTransferServer {

  private static final Logger LOG = LoggerFactory.getLogger(KvTransferServer.class);

  private final Vertx vertx;
  private final LeaseTable leases;
  private NetServer server;

  public KvTransferServer(Vertx vertx, LeaseTable leases) {
    this.vertx = vertx;
    this.leases = leases;
  }

  public Future<NetServer> listen(String host, int port) {
    NetServerOptions options = new NetServerOptions().setHost(host).setPort(port)
        .setTcpNoDelay(true).setSendBufferSize(4 << 20).setReceiveBufferSize(1 << 20);
    server = vertx.createNetServer(options).connectHandler(this::serve);
    return server.listen();
  }

  public int actualPort() {
    return server.actualPort();
  }

  public Future<Void> close() {
    return server == null ? Future.succeededFuture() : server.close();
  }

  private void serve(NetSocket socket) {
    socket.handler(new KvFrameParser(frame -> onFrame(socket, frame), error -> {
      LOG.warn("closing KV connection from {}: {}", socket.remoteAddress(), error.getMessage());
      socket.close();
    }));
  }

  private void onFrame(NetSocket socket, KvFrame frame) {
    switch (frame.type()) {
      case PULL -> pull(socket, frame.payloadText());
      case RELEASE -> {
        leases.release(frame.payloadText());
        socket.write(KvFrame.empty(KvFrame.Type.RELEASED).encode());
      }
      default -> {
        LOG.warn("unexpected {} frame from {}", frame.type(), socket.remoteAddress());
        socket.close();
      }
    }
  }

  private void pull(NetSocket socket, String transferId) {
    KvExport export = leases.startPull(transferId);
    if (export == null) {
      socket.write(KvFrame.text(KvFrame.Type.ERROR,
          "UNKNOWN_TRANSFER: no live KV lease " + transferId + " (expired or released)").encode());
      return;
    }
    socket.write(KvFrame.of(KvFrame.Type.HEADER, export.header()).encode());
    sendChunks(socket, export, 0);
  }

  private void sendChunks(NetSocket socket, KvExport export, int from) {
    int chunk = from;
    while (chunk < export.chunkCount()) {
      socket.write(KvFrame.of(KvFrame.Type.CHUNK, export.chunk(chunk)).encode());
      chunk++;
      if (socket.writeQueueFull()) {
        int next = chunk;
        socket.drainHandler(v -> {
          socket.drainHandler(null);
          sendChunks(socket, export, next);
        });
        return;
      }
    }
    socket.write(KvFrame.empty(KvFrame.Type.END).encode());
  }
}
