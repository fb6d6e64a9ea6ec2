package io.duet.prefill.impl;

import io.duet.engine.Engine;
import io.duet.engine.KvExport;
import io.duet.engine.Sequence;
import io.vertx.core.Vertx;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Prefilled sequences waiting to be pulled, by transfer id. A lease ends exactly once: on the
 * decode instance's release, on a cancel, or when it expires; each of these frees the blocks.
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
    Lease lease = new Lease(transferId, requestId, sequence, engine.exportKv(sequence));
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
   * The export of a live lease, its expiry pushed out by a full lease period, or null when the
   * transfer id is unknown or already ended.
   */
  public KvExport startPull(String transferId) {
    Lease lease = byTransfer.get(transferId);
    if (lease == null) {
      return null;
    }
    schedule(lease);
    return lease.export;
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
    engine.release(lease.sequence);
    LOG.debug("KV lease {} of request {} {}", transferId, lease.requestId, why);
    onRelease.run();
    return true;
  }

  public int size() {
    return byTransfer.size();
  }

  /** Tokens held by live leases. */
  public long heldTokens() {
    long tokens = 0;
    for (Lease lease : byTransfer.values()) {
      tokens += lease.export.tokenCount();
    }
    return tokens;
  }

  /** Frees every lease (shutdown). */
  public void releaseAll() {
    for (String transferId : byTransfer.keySet()) {
      end(transferId, "released at shutdown");
    }
  }
}
