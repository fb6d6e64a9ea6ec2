package io.duet.kv;

import io.duet.engine.Engine;
import io.duet.engine.Sequence;
import io.vertx.core.Vertx;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Prefilled sequences waiting to be pulled, by transfer id. A lease ends exactly once: on the
 * decode instance's release, on a cancel, or when it expires; its blocks are freed then, or
 * when the last pull still reading them lets go.
 * A pull in progress pushes the expiry out so that a slow transfer is not cut off.
 */
public final class LeaseTable {

  private static final Logger LOG = LoggerFactory.getLogger(LeaseTable.class);

  private final Vertx vertx;
  private final Engine engine;
  private final long leaseMillis;
  private final Runnable onRelease;
  private final SecureRandom random = new SecureRandom();
  private final Map<String, Lease> byTransfer = new ConcurrentHashMap<>();
  private final Map<String, String> transferByRequest = new ConcurrentHashMap<>();
  /** Leases that ended while a pull still pinned their blocks. */
  private final AtomicInteger pinnedEnded = new AtomicInteger();

  /** @param onRelease called after blocks were freed (wakes a scheduler waiting for room) */
  public LeaseTable(Vertx vertx, Engine engine, long leaseMillis, Runnable onRelease) {
    this.vertx = vertx;
    this.engine = engine;
    this.leaseMillis = leaseMillis;
    this.onRelease = onRelease;
  }

  /** Leases a prefilled sequence; returns the new transfer id. Any thread. */
  public String lease(String requestId, Sequence sequence) {
    byte[] id = new byte[16];
    random.nextBytes(id);
    String transferId = Base64.getUrlEncoder().withoutPadding().encodeToString(id);
    Lease lease = new Lease(transferId, requestId, sequence,
        new KvStreamWriter(engine.exportKv(sequence)));
    byTransfer.put(transferId, lease);
    transferByRequest.put(requestId, transferId);
    schedule(lease);
    return transferId;
  }

  public long expiresAt(String transferId) {
    Lease lease = byTransfer.get(transferId);
    return lease == null ? 0 : lease.expiresAtMillis;
  }

  private void schedule(Lease lease) {
    synchronized (lease) {
      if (lease.timerId != 0) {
        vertx.cancelTimer(lease.timerId);
      }
      lease.expiresAtMillis = System.currentTimeMillis() + leaseMillis;
      lease.timerId = vertx.setTimer(leaseMillis, t -> {
        if (end(lease.transferId, "expired")) {
          LOG.warn("KV lease {} of request {} expired unpulled after {} ms", lease.transferId,
              lease.requestId, leaseMillis);
        }
      });
    }
  }

  /**
   * Starts a pull: pins the lease's blocks until {@link Pull#end()} and pushes its expiry out by a
   * full lease period. Null when the transfer id is unknown or the lease already ended.
   */
  public Pull startPull(String transferId) {
    Lease lease = byTransfer.get(transferId);
    if (lease == null || !lease.pin()) {
      return null;
    }
    schedule(lease);
    return new Pull(lease);
  }

  /** A pull in progress: the export to send, valid while {@link #isLive()}. */
  public final class Pull {
    private final Lease lease;
    private boolean ended;

    private Pull(Lease lease) {
      this.lease = lease;
    }

    public KvStreamWriter export() {
      return lease.export;
    }

    public String requestId() {
      return lease.requestId;
    }

    /** False once the lease ended (released, cancelled, expired): stop sending. */
    public boolean isLive() {
      return !lease.isEnded();
    }

    /** Unpins the blocks; frees them if the lease ended meanwhile. Idempotent. */
    public void end() {
      if (!ended) {
        ended = true;
        if (lease.unpin()) {
          pinnedEnded.decrementAndGet();
          free(lease);
        }
      }
    }
  }

  /** Ends a lease by transfer id; false when it had already ended. */
  public boolean release(String transferId) {
    return end(transferId, "released");
  }

  /** Ends the lease of a request, if it has one. */
  public boolean releaseRequest(String requestId) {
    String transferId = transferByRequest.get(requestId);
    return transferId != null && end(transferId, "cancelled");
  }

  private boolean end(String transferId, String why) {
    Lease lease = byTransfer.remove(transferId);
    if (lease == null) {
      return false;
    }
    transferByRequest.remove(lease.requestId, transferId);
    synchronized (lease) {
      vertx.cancelTimer(lease.timerId);
    }
    LOG.debug("KV lease {} of request {} {}", transferId, lease.requestId, why);
    if (lease.end()) {
      free(lease);
    } else {
      pinnedEnded.incrementAndGet();
    }
    return true;
  }

  private void free(Lease lease) {
    engine.release(lease.sequence);
    onRelease.run();
  }

  public int size() {
    return byTransfer.size();
  }

  /**
   * Whether blocks will come back without anything new happening: a live lease will be pulled
   * or expire, and an ended one still pinned by a pull is freed when the pull lets go.
   */
  public boolean holdsBlocks() {
    return !byTransfer.isEmpty() || pinnedEnded.get() > 0;
  }

  /** Frees every lease (shutdown). */
  public void releaseAll() {
    for (String transferId : byTransfer.keySet()) {
      end(transferId, "released at shutdown");
    }
  }
}
