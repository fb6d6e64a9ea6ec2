package io.duet.kv;

import io.duet.contract.Failure;
import io.duet.contract.ServiceException;
import io.duet.contract.KvHandle;
import io.duet.engine.Engine;
import io.duet.engine.KvCacheFullException;
import io.duet.engine.KvTransferException;
import io.duet.engine.Sequence;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import io.vertx.core.net.NetSocket;
import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Pulls leased KV from prefill instances over pooled TCP connections and imports it into the
 * local engine. A connection serves one transfer at a time; when all of a peer's connections
 * are busy, pulls wait for one. Any failure aborts the import (its blocks are freed); a
 * refusal by the prefill instance (ERROR frame) leaves the connection idle for the next pull,
 * any other failure closes it, since its state can no longer be trusted. A prefill instance
 * that cannot be connected to, whose connection breaks mid-transfer, or that does not answer a
 * PULL within the pull timeout fails the pull as KV_UNREACHABLE: it is gone or cut off, and the
 * KV can only come from prefilling again elsewhere. Each PULL proves the lease's pull key over
 * the nonce its connection opened with ({@link PullAuth}), naming this decode instance.
 *
 * <p>The KV of a prefill instance in this JVM ({@link SameJvmKvServers}) is, unless the channel
 * says otherwise ({@link KvChannel#sameJvmHandoff}), copied from its engine's cache into this
 * one's instead: no socket and no frames, but the same proof of the pull key, the same layout
 * check, the lease served once and released as over TCP, and a lease whose KV is being computed
 * copied layer by layer as the prefill computes it. Use from one Vert.x context only.
 */
public final class KvPuller {

  private static final Logger LOG = LoggerFactory.getLogger(KvPuller.class);

  private final Vertx vertx;
  private final Engine engine;
  private final int connectionsPerPeer;
  private final long timeoutMillis;
  private final String instanceId;
  private final PullAuth auth;
  private final boolean sameJvmHandoff;
  // Kept in a field: Vert.x may close a client that nothing references.
  private final NetClient client;
  private final Map<String, Peer> peers = new HashMap<>();
  private final Map<String, Transfer> transfers = new HashMap<>();

  /**
   * @param instanceId this decode instance's id, which it claims leases as
   * @param channel the pull keys and TLS of the KV channel
   */
  public KvPuller(Vertx vertx, Engine engine, int connectionsPerPeer, long timeoutMillis,
      String instanceId, KvChannel channel) {
    this.vertx = vertx;
    this.engine = engine;
    this.connectionsPerPeer = connectionsPerPeer;
    this.timeoutMillis = timeoutMillis;
    this.instanceId = instanceId;
    this.auth = channel.auth();
    this.sameJvmHandoff = channel.sameJvmHandoff();
    NetClientOptions options = new NetClientOptions().setTcpNoDelay(true)
        .setReceiveBufferSize(4 << 20).setConnectTimeout((int) Math.min(timeoutMillis, 10_000));
    this.client = vertx.createNetClient(channel.tls() == null ? options
        : channel.tls().applyTo(options));
  }

  /** How a pull's KV came: over TCP, or copied from a prefill instance in this JVM. */
  public enum Path {
    TCP("tcp"), SAME_JVM("same-jvm");

    private final String label;

    Path(String label) {
      this.label = label;
    }

    /** As metrics and logs name it. */
    public String label() {
      return label;
    }
  }

  /**
   * A pulled sequence, every token computed, and, when the KV was streamed while its prefill
   * ran (a layered stream), the first token its prefill sampled; null otherwise.
   */
  public record Pulled(Sequence sequence, FirstToken first, Path path) {
  }

  /**
   * Pulls the KV named by {@code handle}; fails as CANCELLED when the request's first token,
   * sampled once a streamed KV was computed, ended it. A stream of another layout fails as INCOMPATIBLE_KV
   * when its header arrives (callers check the handle's fingerprint before, as DecodeService
   * does, to refuse without a round trip). The KV of a lease whose prefill is still running
   * arrives as it is computed, and the pull ends when the prefill does.
   */
  public Future<Pulled> pull(KvHandle handle) {
    Transfer transfer = new Transfer(handle);
    transfers.put(handle.transferId(), transfer);
    transfer.timer = vertx.setTimer(timeoutMillis, t -> transfer.fail(transfer.timedOut()));
    LeaseTable local = sameJvmHandoff ? SameJvmKvServers.find(handle.host(), handle.port())
        : null;
    if (local != null) {
      transfer.local = new SameJvmPull(transfer, local);
      transfer.local.start();
    } else {
      peers.computeIfAbsent(handle.host() + ":" + handle.port(), k -> new Peer(handle.host(),
          handle.port())).submit(transfer);
    }
    return transfer.promise.future();
  }

  /**
   * Abandons a pull in progress (the request was cancelled): a half import is aborted and its
   * blocks freed at once, the connection closed if it was mid-transfer. The pull's future fails
   * with CANCELLED.
   */
  public void cancel(KvHandle handle) {
    Transfer transfer = transfers.get(handle.transferId());
    if (transfer != null) {
      transfer.fail(new ServiceException(Failure.CANCELLED, "pull cancelled"));
    }
  }

  public Future<Void> close() {
    return client.close();
  }

  /** The failure of a pull its prefill instance refused with {@code error} ("CODE: message"). */
  private static ServiceException refused(String error) {
    // A first token that ended the request is no failure: the requester knows it.
    return error.startsWith(KvTransferServer.FIRST_TOKEN_ENDED)
        ? new ServiceException(Failure.CANCELLED, error)
        : new ServiceException(Failure.KV_TRANSFER, "prefill instance refused the pull: " + error);
  }

  /** The failure of a pull whose import could not begin or go on. */
  private static ServiceException importFailed(RuntimeException e) {
    if (e instanceof KvCacheFullException) {
      return new ServiceException(Failure.OVERLOADED, e.getMessage());
    }
    return new ServiceException(e instanceof KvTransferException t
        && t.reason() == KvTransferException.Reason.FINGERPRINT_MISMATCH
        ? Failure.INCOMPATIBLE_KV : Failure.KV_TRANSFER, e.getMessage());
  }

  /** The pooled connections to one prefill instance. */
  private final class Peer {
    final String host;
    final int port;
    final ArrayDeque<Connection> idle = new ArrayDeque<>();
    final ArrayDeque<Transfer> waiting = new ArrayDeque<>();
    int open;

    Peer(String host, int port) {
      this.host = host;
      this.port = port;
    }

    void submit(Transfer transfer) {
      waiting.add(transfer);
      dispatch();
    }

    void dispatch() {
      while (!waiting.isEmpty()) {
        if (waiting.peek().done) {
          waiting.poll();
          continue;
        }
        Connection connection = idle.poll();
        if (connection != null) {
          connection.start(waiting.poll());
        } else if (open < connectionsPerPeer) {
          open++;
          Transfer first = waiting.poll();
          client.connect(port, host).onComplete(result -> {
            if (result.succeeded()) {
              new Connection(this, result.result()).start(first);
            } else {
              open--;
              first.fail(new ServiceException(Failure.KV_UNREACHABLE, "cannot connect to the "
                  + "prefill instance's KV endpoint " + host + ":" + port + ": "
                  + result.cause().getMessage()));
              dispatch();
            }
          });
        } else {
          return;
        }
      }
    }

    void closed(Connection connection) {
      open--;
      idle.remove(connection);
      dispatch();
      if (open == 0 && waiting.isEmpty()) {
        // Nothing left to reuse: forget the peer (it may have left the cluster for good).
        peers.remove(host + ":" + port, this);
      }
    }
  }

  /** One TCP connection and the transfer it is serving. */
  private final class Connection {
    final Peer peer;
    final NetSocket socket;
    Transfer current;
    boolean closed;
    /** What PULLs prove their keys over: the server's first frame; null until it came. */
    byte[] nonce;

    Connection(Peer peer, NetSocket socket) {
      this.peer = peer;
      this.socket = socket;
      KvFrameParser.attach(socket, KvFrame.MAX_PAYLOAD, this::onFrame,
          error -> broken(error.getMessage()));
      socket.closeHandler(v -> {
        closed = true;
        if (current != null) {
          current.fail(new ServiceException(Failure.KV_UNREACHABLE, "the KV connection to the "
              + "prefill instance broke mid-transfer"));
          current = null;
        }
        peer.closed(this);
      });
    }

    void start(Transfer transfer) {
      if (transfer.done) {
        idle();
        return;
      }
      current = transfer;
      transfer.connection = this;
      if (nonce != null) {
        sendPull();
      }
    }

    /** Sends the PULL of {@link #current}, or fails it when there is no key to prove. */
    void sendPull() {
      Transfer transfer = current;
      current = null; // a pull that has no key to prove leaves the connection idle
      PullClaim claim = transfer.claim(nonce);
      if (claim == null) {
        idle();
        return;
      }
      current = transfer;
      socket.write(claim.toFrame().encode());
    }

    void onFrame(KvFrame frame) {
      if (frame.type() == KvFrame.Type.NONCE) {
        if (nonce != null) {
          broken("a second NONCE");
          return;
        }
        nonce = frame.payload().getBytes();
        if (current != null) {
          sendPull();
        }
        return;
      }
      Transfer transfer = current;
      if (transfer == null) {
        broken("unexpected " + frame.type() + " frame on an idle connection");
        return;
      }
      try {
        switch (frame.type()) {
          case HEADER -> {
            if (transfer.kvImport != null) {
              broken("a second KV header in one transfer");
              return;
            }
            transfer.kvImport = KvStreamReader.begin(engine, frame.payload().getBytes());
          }
          // in place: the frame's payload is still the network's buffers
          case CHUNK -> transfer.kvImport().acceptChunk(frame.payloadBuffers());
          case END -> {
            FirstToken first = KvWireFormat.parseEnd(ByteBuffer.wrap(frame.payload().getBytes()));
            if ((first != null) != transfer.kvImport().isLayered()) {
              broken("an END " + (first == null ? "without" : "with") + " a first token");
              return;
            }
            Sequence sequence = transfer.kvImport().finish();
            transfer.kvImport = null;
            socket.write(KvFrame.text(KvFrame.Type.RELEASE, transfer.handle.transferId()).encode());
            transfer.succeed(new Pulled(sequence, first, Path.TCP));
          }
          case RELEASED -> {
            current = null;
            idle();
          }
          case ERROR -> {
            current = null;
            transfer.fail(refused(frame.payloadText()));
            idle();
          }
          default -> broken("unexpected " + frame.type() + " frame");
        }
      } catch (KvTransferException | KvCacheFullException e) {
        transfer.fail(importFailed(e));
        close();
      } catch (IllegalStateException e) {
        broken(e.getMessage());
      }
    }

    void idle() {
      if (!closed) {
        peer.idle.add(this);
        peer.dispatch();
      }
    }

    void broken(String why) {
      if (current != null) {
        current.fail(new ServiceException(Failure.KV_TRANSFER, "KV transfer protocol error: " + why));
      }
      close();
    }

    void close() {
      current = null;
      socket.close();
    }
  }

  /**
   * A pull from a prefill instance of this JVM: the lease's chunks are copied from its engine's
   * cache into this one's as they are computed, on this puller's context. It holds the lease as
   * a TCP connection that pulled it would, and lets go of it as that connection would.
   */
  private final class SameJvmPull implements PullSender.Sink {
    final Transfer transfer;
    final LeaseTable leases;
    final Context context = vertx.getOrCreateContext();
    /** The lease's pinned blocks, until {@link #close}. */
    LeaseTable.Pull pull;
    PullSender sender;

    SameJvmPull(Transfer transfer, LeaseTable leases) {
      this.transfer = transfer;
      this.leases = leases;
    }

    void start() {
      byte[] nonce = leases.auth().newNonce();
      PullClaim claim = transfer.claim(nonce);
      if (claim == null) {
        return;
      }
      pull = leases.startPull(claim, nonce, this);
      if (pull == null) {
        transfer.fail(refused(KvTransferServer.UNKNOWN_TRANSFER));
        return;
      }
      try {
        transfer.kvImport = KvStreamReader.begin(engine, pull.export());
      } catch (KvTransferException | KvCacheFullException e) {
        transfer.fail(importFailed(e));
        return;
      }
      sender = new PullSender(pull, this);
      sender.resume();
    }

    @Override
    public boolean send(int index) {
      try {
        transfer.kvImport().copyChunk(index, pull.export());
      } catch (KvTransferException e) {
        transfer.fail(importFailed(e));
      }
      return true;
    }

    @Override
    public void end(FirstToken first) {
      Sequence sequence;
      try {
        sequence = transfer.kvImport().finish();
      } catch (KvTransferException e) {
        transfer.fail(importFailed(e));
        return;
      }
      transfer.kvImport = null;
      close("released");
      transfer.succeed(new Pulled(sequence, first, Path.SAME_JVM));
    }

    @Override
    public void refuse(String error) {
      transfer.fail(refused(error));
    }

    @Override
    public void execute(Runnable task) {
      context.runOnContext(v -> task.run());
    }

    /** Unpins the lease's blocks and ends the lease, served once, for {@code why}. Idempotent. */
    void close(String why) {
      if (pull == null) {
        return;
      }
      if (sender != null) {
        sender.stop();
      }
      pull.end();
      pull = null;
      leases.releasePulled(transfer.handle.transferId(), this, why);
    }
  }

  /** One pull in progress. */
  private final class Transfer {
    final KvHandle handle;
    final Promise<Pulled> promise = Promise.promise();
    Connection connection;
    /** Set instead of {@link #connection} when the KV comes from this JVM. */
    SameJvmPull local;
    KvStreamReader kvImport;
    long timer;
    boolean done;

    Transfer(KvHandle handle) {
      this.handle = handle;
    }

    /**
     * Why the pull failed when its time was up: a PULL that got no answer at all means the
     * prefill instance is gone or cut off (KV_UNREACHABLE), one that got its header is slow.
     */
    ServiceException timedOut() {
      String pull = "KV pull of " + handle.tokenCount() + " tokens from " + handle.host() + ":"
          + handle.port();
      return connection != null && kvImport == null
          ? new ServiceException(Failure.KV_UNREACHABLE, pull + " got no answer within "
              + timeoutMillis + " ms")
          : new ServiceException(Failure.TIMEOUT, pull + " took longer than " + timeoutMillis
              + " ms");
    }

    /**
     * The PULL that proves this pull's key over {@code nonce}; null, the pull failed, when there
     * is no key to prove.
     */
    PullClaim claim(byte[] nonce) {
      String transferId = handle.transferId();
      try {
        byte[] key = auth.key(transferId, instanceId, handle.pullKey());
        return new PullClaim(transferId, instanceId, PullAuth.proof(key, nonce, transferId));
      } catch (IllegalArgumentException e) {
        fail(new ServiceException(Failure.KV_TRANSFER, "cannot pull: " + e.getMessage()));
        return null;
      }
    }

    KvStreamReader kvImport() {
      if (kvImport == null) {
        throw new IllegalStateException("KV chunk before the KV header");
      }
      return kvImport;
    }

    void succeed(Pulled pulled) {
      if (done) {
        engine.release(pulled.sequence());
        return;
      }
      done = true;
      transfers.remove(handle.transferId(), this);
      vertx.cancelTimer(timer);
      promise.complete(pulled);
    }

    void fail(Throwable error) {
      if (done) {
        return;
      }
      done = true;
      transfers.remove(handle.transferId(), this);
      vertx.cancelTimer(timer);
      if (kvImport != null) {
        kvImport.abort();
        kvImport = null;
      }
      if (connection != null && connection.current == this) {
        connection.close();
      }
      if (local != null) {
        local.close("ended: its puller gave up");
      }
      LOG.warn("KV pull {} from {}:{} failed: {}", handle.transferId(), handle.host(),
          handle.port(), error.getMessage());
      promise.fail(error);
    }
  }
}
