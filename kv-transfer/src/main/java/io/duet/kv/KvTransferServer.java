package io.duet.kv;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.internal.net.NetSocketInternal;
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
 *
 * <p>A pull pins its lease's blocks until it ends, even past the end of the lease, and it ends
 * only when its END is written or the connection closes. A decode instance that stops reading
 * but keeps the connection open would therefore hold the blocks for as long as it lives; so a
 * pull that waits longer than {@link Settings#stallMillis} for its connection to drain is cut
 * off: the connection is closed, the pull ends, the blocks are freed if the lease has ended
 * (else the lease keeps them until it is released, cancelled or expires, as after any broken
 * connection), and {@value #STALLS_METRIC} counts it.
 */
public final class KvTransferServer {

  /** Prometheus counter of connections closed because their reader stalled a pull. */
  public static final String STALLS_METRIC = "duet_kv_send_stalls_total";

  private static final Logger LOG = LoggerFactory.getLogger(KvTransferServer.class);

  /**
   * How the server treats each connection.
   *
   * @param writeQueueBytes bytes queued on a connection before encoding waits for it to drain
   * @param sendBufferBytes the kernel's send buffer of a connection (SO_SNDBUF): with the
   *     peer's receive buffer, what a reader that stopped reading still takes in before a pull
   *     has to wait for it
   * @param stallMillis how long a pull may wait for its connection to drain before the
   *     connection is closed as stalled
   */
  public record Settings(int writeQueueBytes, int sendBufferBytes, long stallMillis) {
    /** Room for several whole chunks, so the next one is encoded while the last one is sent. */
    public static final int DEFAULT_WRITE_QUEUE_BYTES = 4 << 20;
    /** Asked of the kernel for each connection (Linux caps it at net.core.wmem_max). */
    public static final int DEFAULT_SEND_BUFFER_BYTES = 4 << 20;

    /** The default buffers, with the configured stall timeout. */
    public static Settings withStallMillis(long stallMillis) {
      return new Settings(DEFAULT_WRITE_QUEUE_BYTES, DEFAULT_SEND_BUFFER_BYTES, stallMillis);
    }
  }

  private final Vertx vertx;
  private final LeaseTable leases;
  private final Counter stalls;
  private NetServer server;
  private Settings settings;

  /** @param metrics where {@value #STALLS_METRIC} is registered */
  public KvTransferServer(Vertx vertx, LeaseTable leases, MeterRegistry metrics) {
    this.vertx = vertx;
    this.leases = leases;
    this.stalls = Counter.builder(STALLS_METRIC)
        .description("KV connections closed because a pull made no progress for the stall "
            + "timeout (the decode instance stopped reading)")
        .register(metrics);
  }

  public Future<NetServer> listen(String host, int port, Settings settings) {
    this.settings = settings;
    NetServerOptions options = new NetServerOptions().setHost(host).setPort(port)
        .setTcpNoDelay(true).setSendBufferSize(settings.sendBufferBytes())
        .setReceiveBufferSize(1 << 20);
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
    /** Closes the connection if {@link #sending} waits too long for a drain. */
    private long stallTimer = -1;

    Connection(NetSocket socket) {
      this.socket = socket;
      socket.setWriteQueueMaxSize(settings.writeQueueBytes());
      socket.closeHandler(v -> closed());
      KvFrameParser.attach(socket, this::onFrame, error -> {
        LOG.warn("closing KV connection from {}: {}", socket.remoteAddress(), error.getMessage());
        socket.close();
      });
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
      KvStreamWriter export = sending.export();
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
          stallTimer = vertx.setTimer(settings.stallMillis(), t -> stalled());
          socket.drainHandler(v -> {
            vertx.cancelTimer(stallTimer);
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
     * The reader took nothing for the whole stall timeout: closing the connection ends the pull
     * (see {@link #closed}), so that the blocks are not pinned for as long as the peer lives.
     */
    private void stalled() {
      LOG.warn("closing KV connection from {}: the pull of request {} made no progress for {} ms",
          socket.remoteAddress(), sending.requestId(), settings.stallMillis());
      stalls.increment();
      // NetSocket.close() (and a close that passes through Vert.x's handler) first waits for
      // the queued chunks to be written, which is what does not happen here. Closing from
      // Vert.x's place in the pipeline, as it does for idle connections, drops them.
      ((NetSocketInternal) socket).channelHandlerContext().close();
    }

    /**
     * The pull is over (its END or ERROR is written, or the connection closed): unpin its
     * blocks, then act on the RELEASEs that waited for it.
     */
    private void sendEnded() {
      vertx.cancelTimer(stallTimer);
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
