package io.duet.kv;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.internal.net.NetSocketInternal;
import io.vertx.core.net.NetServer;
import io.vertx.core.net.NetServerOptions;
import io.vertx.core.net.NetSocket;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves leased KV to decode instances over TCP (see {@link KvFrame} for the protocol). Chunks
 * are encoded one at a time as the socket drains, so a transfer never holds more than the
 * socket's write queue in memory. The KV of a lease taken while it is computed
 * ({@link LeaseTable#leaseWhileComputing}) goes out layer by layer as the engine computes it:
 * the pull sends what is ready, waits for the engine's next layer (no stall timeout applies to
 * that wait: the prefill's own failure or cancel ends the lease, which ends the pull with an
 * ERROR), and ends with the first token once the prefill is done.
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
 * <p>Trust: each connection starts with a NONCE frame from the server, and a PULL must prove
 * the lease's pull key over it ({@link PullAuth}). A lease is served once, to the first
 * connection that proves its key; only that connection may RELEASE it, and when it closes with
 * the lease not released, the lease ends (its puller gave up on it). A PULL or RELEASE that
 * does not qualify, whatever the reason, answers {@code ERROR UNKNOWN_TRANSFER} and changes
 * nothing. A client can make the server hold little: its frames are capped at
 * {@link KvFrame#MAX_CLIENT_PAYLOAD}, a frame begun must be finished within the channel's frame
 * timeout, an idle connection is closed after the idle timeout, and connections beyond the cap
 * are closed on accept ({@value #REFUSED_METRIC} counts those).
 *
 * <p>A pull pins its lease's blocks until it ends, even past the end of the lease, and it ends
 * only when its END is written or the connection closes. A decode instance that stops reading
 * but keeps the connection open would therefore hold the blocks for as long as it lives; so a
 * pull that waits longer than {@link Settings#stallMillis} for its connection to drain is cut
 * off: the connection is closed, the pull ends, the blocks are freed if the lease has ended
 * (else the lease keeps them until it is released, cancelled or expires, as after any broken
 * connection), and {@value #STALLS_METRIC} counts it.
 *
 * <p>While it listens, the server is listed by its endpoint in {@link SameJvmKvServers}, so
 * that a decode rank in this JVM copies the KV of its leases instead of connecting.
 */
public final class KvTransferServer {

  /** Prometheus counter of connections closed because their reader stalled a pull. */
  public static final String STALLS_METRIC = "duet_kv_send_stalls_total";
  /** Prometheus counter of connections closed on accept because the cap was reached. */
  public static final String REFUSED_METRIC = "duet_kv_connections_refused_total";
  /** Prometheus counter of connections closed for a frame not finished within the timeout. */
  public static final String FRAME_TIMEOUTS_METRIC = "duet_kv_frame_timeouts_total";
  /**
   * How an ERROR frame starts when the lease being pulled ended because the request's first
   * token, sampled once its KV was computed, ended the request: nothing failed.
   */
  public static final String FIRST_TOKEN_ENDED = "FIRST_TOKEN_ENDED";
  /** The answer to every PULL or RELEASE that does not qualify, whatever the reason. */
  static final String UNKNOWN_TRANSFER = "UNKNOWN_TRANSFER: no KV lease for this id and key on "
      + "this connection (unknown, ended, already pulled, or pulled by another connection)";

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
   * @param channel TLS and the connections' limits ({@link KvChannel#auth} is the lease
   *     table's)
   */
  public record Settings(int writeQueueBytes, int sendBufferBytes, long stallMillis,
      KvChannel channel) {
    /** Room for several whole chunks, so the next one is encoded while the last one is sent. */
    public static final int DEFAULT_WRITE_QUEUE_BYTES = 4 << 20;
    /** Asked of the kernel for each connection (Linux caps it at net.core.wmem_max). */
    public static final int DEFAULT_SEND_BUFFER_BYTES = 4 << 20;

    /** The default buffers, with the configured stall timeout and channel. */
    public static Settings of(long stallMillis, KvChannel channel) {
      return new Settings(DEFAULT_WRITE_QUEUE_BYTES, DEFAULT_SEND_BUFFER_BYTES, stallMillis,
          channel);
    }
  }

  private final Vertx vertx;
  private final LeaseTable leases;
  private final Counter stalls;
  private final Counter refused;
  private final Counter frameTimeouts;
  private NetServer server;
  /** The address it listens on, as its prefill instance announces it. */
  private String host;
  private Settings settings;
  /** Open connections, over every event loop that accepts them. */
  private final AtomicInteger connections = new AtomicInteger();

  /** @param metrics where {@value #STALLS_METRIC} is registered */
  public KvTransferServer(Vertx vertx, LeaseTable leases, MeterRegistry metrics) {
    this.vertx = vertx;
    this.leases = leases;
    this.stalls = Counter.builder(STALLS_METRIC)
        .description("KV connections closed because a pull made no progress for the stall "
            + "timeout (the decode instance stopped reading)")
        .register(metrics);
    this.refused = Counter.builder(REFUSED_METRIC)
        .description("KV connections closed on accept: the server held its maximum already")
        .register(metrics);
    this.frameTimeouts = Counter.builder(FRAME_TIMEOUTS_METRIC)
        .description("KV connections closed because a client frame was begun and not finished "
            + "within the frame timeout").register(metrics);
  }

  public Future<NetServer> listen(String host, int port, Settings settings) {
    this.settings = settings;
    this.host = host;
    KvChannel channel = settings.channel();
    NetServerOptions options = new NetServerOptions().setHost(host).setPort(port)
        .setTcpNoDelay(true).setSendBufferSize(settings.sendBufferBytes())
        .setReceiveBufferSize(1 << 20).setIdleTimeout(channel.idleTimeoutSeconds());
    if (channel.tls() != null) {
      if (channel.tls().key() == null) {
        return Future.failedFuture(new IllegalArgumentException("kv-tls.cert is set but "
            + "kv-tls.key is not: a prefill instance needs the certificate's private key"));
      }
      channel.tls().applyTo(options);
    }
    server = vertx.createNetServer(options).connectHandler(this::accept);
    return server.listen().onSuccess(s -> SameJvmKvServers.add(host, s.actualPort(), leases));
  }

  private void accept(NetSocket socket) {
    if (connections.incrementAndGet() > settings.channel().maxConnections()) {
      connections.decrementAndGet();
      refused.increment();
      LOG.warn("closing KV connection from {}: {} connections are open already",
          socket.remoteAddress(), settings.channel().maxConnections());
      socket.close();
      return;
    }
    new Connection(socket);
  }

  public int actualPort() {
    return server.actualPort();
  }

  public Future<Void> close() {
    if (server == null) {
      return Future.succeededFuture();
    }
    SameJvmKvServers.remove(host, server.actualPort(), leases);
    return server.close();
  }

  /** One decode instance's connection, on its event loop. */
  private final class Connection implements PullSender.Sink {
    private final NetSocket socket;
    /** The pull being sent, if any: its blocks stay pinned until it ends. */
    private LeaseTable.Pull sending;
    /** What sends {@link #sending}'s chunks. */
    private PullSender sender;
    private final Context context = vertx.getOrCreateContext();
    /** Transfer ids of the RELEASEs that arrived while {@link #sending}, in order. */
    private final List<String> deferredReleases = new ArrayList<>();
    /** Closes the connection if {@link #sending} waits too long for a drain. */
    private long stallTimer = -1;
    /** What this connection's PULLs must prove their keys over. */
    private final byte[] nonce = leases.auth().newNonce();
    /** Transfer ids of the leases this connection pulled and has not released. */
    private final Set<String> pulled = new HashSet<>();
    /** Closes the connection if a frame begun is not finished in time; -1 between frames. */
    private long frameTimer = -1;

    Connection(NetSocket socket) {
      this.socket = socket;
      socket.setWriteQueueMaxSize(settings.writeQueueBytes());
      socket.closeHandler(v -> closed());
      KvFrameParser.attach(socket, KvFrame.MAX_CLIENT_PAYLOAD, this::onFrame, error -> {
        LOG.warn("closing KV connection from {}: {}", socket.remoteAddress(), error.getMessage());
        socket.close();
      }, this::afterRead);
      socket.write(KvFrame.of(KvFrame.Type.NONCE, nonce).encode());
    }

    /** Starts the frame timer when a read leaves a frame half-received, stops it otherwise. */
    private void afterRead(KvFrameParser parser) {
      if (!parser.midFrame()) {
        vertx.cancelTimer(frameTimer);
        frameTimer = -1;
      } else if (frameTimer == -1) {
        frameTimer = vertx.setTimer(settings.channel().frameTimeoutMillis(), t -> {
          LOG.warn("closing KV connection from {}: a frame begun was not finished within {} ms",
              socket.remoteAddress(), settings.channel().frameTimeoutMillis());
          frameTimeouts.increment();
          socket.close();
        });
      }
    }

    private void onFrame(KvFrame frame) {
      switch (frame.type()) {
        case PULL -> {
          if (sending != null) {
            LOG.warn("second PULL on a busy KV connection from {}", socket.remoteAddress());
            socket.close();
            return;
          }
          PullClaim claim = PullClaim.parse(frame);
          if (claim == null) {
            LOG.warn("closing KV connection from {}: malformed PULL", socket.remoteAddress());
            socket.close();
            return;
          }
          pull(claim);
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

    private void pull(PullClaim claim) {
      LeaseTable.Pull pull = leases.startPull(claim, nonce, this);
      if (pull == null) {
        LOG.info("KV connection from {} (claiming to be {}) refused a PULL of {}",
            socket.remoteAddress(), claim.claimant(), claim.transferId());
        socket.write(KvFrame.text(KvFrame.Type.ERROR, UNKNOWN_TRANSFER).encode());
        return;
      }
      pulled.add(claim.transferId());
      sending = pull;
      sender = new PullSender(pull, this);
      socket.write(KvFrame.of(KvFrame.Type.HEADER, pull.export().header()).encode());
      sender.resume();
    }

    /** Writes chunk {@code index} of {@link #sending}; false when the queue must drain first. */
    @Override
    public boolean send(int index) {
      KvStreamWriter export = sending.export();
      socket.write(KvFrame.encode(KvFrame.Type.CHUNK, export.chunkLength(index),
          (destination, offset) -> export.writeChunk(index, destination, offset)));
      if (!socket.writeQueueFull()) {
        return true;
      }
      stallTimer = vertx.setTimer(settings.stallMillis(), t -> stalled());
      socket.drainHandler(v -> {
        vertx.cancelTimer(stallTimer);
        socket.drainHandler(null);
        if (sending != null) { // null: the connection closed while the queue drained
          sender.resume();
        }
      });
      return false;
    }

    @Override
    public void end(FirstToken first) {
      socket.write((first == null ? KvFrame.empty(KvFrame.Type.END)
          : KvFrame.of(KvFrame.Type.END, KvWireFormat.encodeEnd(first))).encode());
      sendEnded();
    }

    @Override
    public void refuse(String error) {
      socket.write(KvFrame.text(KvFrame.Type.ERROR, error).encode());
      sendEnded();
    }

    @Override
    public void execute(Runnable task) {
      context.runOnContext(v -> task.run());
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
      sender.stop();
      sending.end();
      sending = null;
      sender = null;
      for (String transferId : deferredReleases) {
        release(transferId);
      }
      deferredReleases.clear();
    }

    private void release(String transferId) {
      if (pulled.remove(transferId)) {
        leases.releasePulled(transferId, this, "released");
        socket.write(KvFrame.empty(KvFrame.Type.RELEASED).encode());
      } else {
        socket.write(KvFrame.text(KvFrame.Type.ERROR, UNKNOWN_TRANSFER).encode());
      }
    }

    private void closed() {
      connections.decrementAndGet();
      vertx.cancelTimer(frameTimer);
      // The deferred releases are still acted on, so that their blocks do not wait for the
      // leases to expire; their answers go nowhere.
      if (sending != null) {
        sendEnded();
      }
      // Leases pulled here are served once: nobody else can pull them, so they end now.
      for (String transferId : pulled) {
        leases.releasePulled(transferId, this, "ended: the connection that pulled it closed");
      }
      pulled.clear();
    }
  }
}
