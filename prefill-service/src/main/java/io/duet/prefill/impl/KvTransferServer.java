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

  private static final int WRITE_QUEUE_BYTES = 4 << 20;

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
    // Room for several whole chunks, so the next one is encoded while the last one is sent.
    socket.setWriteQueueMaxSize(WRITE_QUEUE_BYTES);
    // The pull being sent on this connection, if any: its blocks stay pinned until it ends.
    LeaseTable.Pull[] current = new LeaseTable.Pull[1];
    socket.closeHandler(v -> {
      if (current[0] != null) {
        current[0].end();
      }
    });
    socket.handler(new KvFrameParser(frame -> onFrame(socket, frame, current), error -> {
      LOG.warn("closing KV connection from {}: {}", socket.remoteAddress(), error.getMessage());
      socket.close();
    }));
  }

  private void onFrame(NetSocket socket, KvFrame frame, LeaseTable.Pull[] current) {
    switch (frame.type()) {
      case PULL -> {
        if (current[0] != null) {
          LOG.warn("second PULL on a busy KV connection from {}", socket.remoteAddress());
          socket.close();
          return;
        }
        LeaseTable.Pull pull = leases.startPull(frame.payloadText());
        if (pull == null) {
          socket.write(KvFrame.text(KvFrame.Type.ERROR, "UNKNOWN_TRANSFER: no live KV lease "
              + frame.payloadText() + " (expired or released)").encode());
          return;
        }
        current[0] = pull;
        socket.write(KvFrame.of(KvFrame.Type.HEADER, pull.export().header()).encode());
        sendChunks(socket, pull, 0, () -> current[0] = null);
      }
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

  private void sendChunks(NetSocket socket, LeaseTable.Pull pull, int from, Runnable onEnd) {
    KvExport export = pull.export();
    int chunk = from;
    while (chunk < export.chunkCount()) {
      if (!pull.isLive()) {
        socket.write(KvFrame.text(KvFrame.Type.ERROR, "LEASE_ENDED: the KV lease ended "
            + "(cancelled or expired) during the pull").encode());
        finish(pull, onEnd);
        return;
      }
      int index = chunk;
      socket.write(KvFrame.encode(KvFrame.Type.CHUNK, export.chunkLength(index),
          (destination, offset) -> export.writeChunk(index, destination, offset)));
      chunk++;
      if (socket.writeQueueFull()) {
        int next = chunk;
        socket.drainHandler(v -> {
          socket.drainHandler(null);
          sendChunks(socket, pull, next, onEnd);
        });
        return;
      }
    }
    socket.write(KvFrame.empty(KvFrame.Type.END).encode());
    finish(pull, onEnd);
  }

  private static void finish(LeaseTable.Pull pull, Runnable onEnd) {
    pull.end();
    onEnd.run();
  }
}
