package io.duet.prefill.impl;

import io.duet.cluster.transfer.KvFrame;
import io.duet.cluster.transfer.KvFrameParser;
import io.duet.engine.KvExport;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves leased KV to decode instances over TCP (see {@link KvFrame} for the protocol). Chunks
 * are encoded one at a time as the socket drains, so a transfer never holds more than the
 * socket's write queue in memory.
 *
 * <p>A connection answers its frames in the order they came, one transfer at a time. A RELEASE
 * that arrives while a pull is being sent on the same connection is deferred: the pull runs to
 * its END (or to an ERROR if its lease ends some other way meanwhile), then the release ends
 * the lease, frees its blocks and is answered RELEASED. The answer never lands between a pull's
 * chunks, and a release of the very lease being sent does not cut the stream short. If the
 * connection closes first, the deferred releases still end their leases, since the decode
 * instance asked for that; the blocks do not wait for the lease to expire. A second PULL while
 * one is being sent breaks the protocol and closes the connection.
 */
public final class KvTransferServer {

  /** Room for several whole chunks, so the next one is encoded while the last one is sent. */
  public static final int DEFAULT_WRITE_QUEUE_BYTES = 4 << 20;

  private static final Logger LOG = LoggerFactory.getLogger(KvTransferServer.class);

  private final Vertx vertx;
  private final LeaseTable leases;
  private NetServer server;
  private int writeQueueBytes;

  public KvTransferServer(Vertx vertx, LeaseTable leases) {
    this.vertx = vertx;
    this.leases = leases;
  }

  /**
   * @param writeQueueBytes bytes queued on a connection before encoding waits for it to drain
   *     ({@link #DEFAULT_WRITE_QUEUE_BYTES} but in tests)
   */
  public Future<NetServer> listen(String host, int port, int writeQueueBytes) {
    this.writeQueueBytes = writeQueueBytes;
    NetServerOptions options = new NetServerOptions().setHost(host).setPort(port)
        .setTcpNoDelay(true).setSendBufferSize(4 << 20).setReceiveBufferSize(1 << 20);
    server = vertx.createNetServer(options).connectHandler(Connection::new);
    return server.listen();
  }

  public int actualPort() {
    return server.actualPort();
  }

  public Future<Void> close() {
    return server == null ? Future.succeededFuture() : server.close();
  }

  /** One decode instance's connection, on its event loop. */
  private final class Connection {
    private final NetSocket socket;
    /** The pull being sent, if any: its blocks stay pinned until it ends. */
    private LeaseTable.Pull sending;
    /** Transfer ids of the RELEASEs that arrived while {@link #sending}, in order. */
    private final List<String> deferredReleases = new ArrayList<>();

    Connection(NetSocket socket) {
      this.socket = socket;
      socket.setWriteQueueMaxSize(writeQueueBytes);
      socket.closeHandler(v -> closed());
      socket.handler(new KvFrameParser(this::onFrame, error -> {
        LOG.warn("closing KV connection from {}: {}", socket.remoteAddress(), error.getMessage());
        socket.close();
      }));
    }

    private void onFrame(KvFrame frame) {
      switch (frame.type()) {
        case PULL -> {
          if (sending != null) {
            LOG.warn("second PULL on a busy KV connection from {}", socket.remoteAddress());
            socket.close();
            return;
          }
          pull(frame.payloadText());
        }
        case RELEASE -> {
          if (sending != null) {
            deferredReleases.add(frame.payloadText());
          } else {
            release(frame.payloadText());
          }
        }
        default -> {
          LOG.warn("unexpected {} frame from {}", frame.type(), socket.remoteAddress());
          socket.close();
        }
      }
    }

    private void pull(String transferId) {
      LeaseTable.Pull pull = leases.startPull(transferId);
      if (pull == null) {
        socket.write(KvFrame.text(KvFrame.Type.ERROR, "UNKNOWN_TRANSFER: no live KV lease "
            + transferId + " (expired or released)").encode());
        return;
      }
      sending = pull;
      socket.write(KvFrame.of(KvFrame.Type.HEADER, pull.export().header()).encode());
      sendChunks(0);
    }

    private void sendChunks(int from) {
      KvExport export = sending.export();
      int chunk = from;
      while (chunk < export.chunkCount()) {
        if (!sending.isLive()) {
          socket.write(KvFrame.text(KvFrame.Type.ERROR, "LEASE_ENDED: the KV lease ended "
              + "(cancelled or expired) during the pull").encode());
          sendEnded();
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
            if (sending != null) { // null: the connection closed while the queue drained
              sendChunks(next);
            }
          });
          return;
        }
      }
      socket.write(KvFrame.empty(KvFrame.Type.END).encode());
      sendEnded();
    }

    /**
     * The pull is over (its END or ERROR is written, or the connection closed): unpin its
     * blocks, then act on the RELEASEs that waited for it.
     */
    private void sendEnded() {
      sending.end();
      sending = null;
      for (String transferId : deferredReleases) {
        release(transferId);
      }
      deferredReleases.clear();
    }

    private void release(String transferId) {
      leases.release(transferId);
      socket.write(KvFrame.empty(KvFrame.Type.RELEASED).encode());
    }

    private void closed() {
      // The deferred releases are still acted on, so that their blocks do not wait for the
      // leases to expire; their answers go nowhere.
      if (sending != null) {
        sendEnded();
      }
    }
  }
}
