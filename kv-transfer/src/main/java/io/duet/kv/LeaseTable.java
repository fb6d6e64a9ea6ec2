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
 *
 * <p>A lease opens only to the holder of its pull key ({@link PullAuth}) and is served once: the
 * first connection that proves the key pulls it, and only that connection may then release it.
 * Anyone else, whether the id is unknown, the key wrong or the lease already pulled, is told the
 * same thing (null), so that a guess learns nothing of which ids exist.
 */
public final class LeaseTable {

  private static final Logger LOG = LoggerFactory.getLogger(LeaseTable.class);

  private final Vertx vertx;
  private final Engine engine;
  private final long leaseMillis;
  private final Runnable onRelease;
  private final PullAuth auth;
  private final SecureRandom random = new SecureRandom();
  private final Map<String, Lease> byTransfer = new ConcurrentHashMap<>();
  private final Map<String, String> transferByRequest = new ConcurrentHashMap<>();
  /** Leases that ended while a pull or the engine's step still pinned their blocks. */
  private final AtomicInteger pinnedEnded = new AtomicInteger();
  /** Leases whose KV the engine computes, until {@link #computed} lets them go. */
  private final Map<String, Lease> computing = new ConcurrentHashMap<>();

  /**
   * @param auth how pull keys are made and checked
   * @param onRelease called after blocks were freed (wakes a scheduler waiting for room)
   */
  public LeaseTable(Vertx vertx, Engine engine, long leaseMillis, PullAuth auth,
      Runnable onRelease) {
    this.vertx = vertx;
    this.engine = engine;
    this.leaseMillis = leaseMillis;
    this.auth = auth;
    this.onRelease = onRelease;
  }

  PullAuth auth() {
    return auth;
  }

  /** Leases a prefilled sequence; returns the new transfer id. Any thread. */
  public String lease(String requestId, Sequence sequence) {
    Lease lease = new Lease(newTransferId(), requestId, sequence, auth.newLeaseKey(), false);
    lease.export = new KvStreamWriter(engine.exportKv(sequence));
    publish(lease);
    schedule(lease);
    return lease.transferId;
  }

  /**
   * Leases a sequence that the engine is about to compute: its KV is served layer by layer as
   * the engine computes it ({@link Engine#exportKvAsComputed}, a layered stream), and the
   * stream ends once {@link #computed} gives the first token. Until then the lease does not
   * expire and its blocks stay allocated even if it ends, since the engine's step writes them;
   * every lease taken so must be handed to {@link #computed} or {@link #computeFailed}. Engine
   * thread, before the step; returns the new transfer id.
   */
  public String leaseWhileComputing(String requestId, Sequence sequence) {
    Lease lease = new Lease(newTransferId(), requestId, sequence, auth.newLeaseKey(), true);
    lease.export = new KvStreamWriter(engine.exportKvAsComputed(sequence, lease::progressed),
        true);
    computing.put(lease.transferId, lease);
    publish(lease);
    return lease.transferId;
  }

  /**
   * The KV of a lease taken by {@link #leaseWhileComputing} is computed and {@code first} was
   * sampled after it: a pull sends what remains and ends with it. The lease's expiry starts now.
   */
  public void computed(String transferId, FirstToken first) {
    Lease lease = computing.remove(transferId);
    if (lease == null) {
      return;
    }
    if (lease.computed(first)) {
      // it ended while computed, and no pull holds it
      pinnedEnded.decrementAndGet();
      free(lease);
    } else if (!lease.isEnded()) {
      schedule(lease);
    }
  }

  /**
   * The KV of a lease taken by {@link #leaseWhileComputing} will not be served (its prefill
   * failed or was cancelled, or its first token ended the request): the lease ends, a pull in
   * progress gets an ERROR, and the blocks are freed once no pull reads them.
   */
  public void computeFailed(String transferId, String why) {
    end(transferId, why);
    computed(transferId, null);
  }

  /**
   * The first token sampled after the KV of a lease taken by {@link #leaseWhileComputing} ended
   * the request: as {@link #computeFailed}, but a pull in progress is told so
   * ({@link KvTransferServer#FIRST_TOKEN_ENDED}), so that its decode instance lets the request
   * go without calling it a failure.
   */
  public void firstTokenEnded(String transferId) {
    Lease lease = byTransfer.get(transferId);
    if (lease != null) {
      lease.markEndedAtFirstToken();
    }
    computeFailed(transferId, "ended: the first token ended the request");
  }

  private static final int TRANSFER_ID_BYTES = 16;

  private String newTransferId() {
    byte[] id = new byte[TRANSFER_ID_BYTES];
    random.nextBytes(id);
    return Base64.getUrlEncoder().withoutPadding().encodeToString(id);
  }

  private void publish(Lease lease) {
    byTransfer.put(lease.transferId, lease);
    transferByRequest.put(lease.requestId, lease.transferId);
  }

  public long expiresAt(String transferId) {
    Lease lease = byTransfer.get(transferId);
    return lease == null ? 0 : lease.expiresAtMillis;
  }

  /**
   * The pull key to hand, with the lease, to the one decode instance that will pull it (base64url);
   * null when keys are derived from the cluster secret, or the lease is gone.
   */
  public String pullKey(String transferId) {
    Lease lease = byTransfer.get(transferId);
    return lease == null ? null : lease.pullKey;
  }

  /** (Re)starts the lease's expiry; a lease whose KV is being computed does not expire. */
  private void schedule(Lease lease) {
    if (lease.isComputing()) {
      return;
    }
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
   * Starts the pull {@code claim} asks for on connection {@code by}, whose nonce is
   * {@code nonce}: pins the lease's blocks until {@link Pull#end()} and pushes its expiry out by
   * a full lease period. Null, whatever the reason, when the transfer id is unknown, the proof
   * does not match the lease's key, or the lease ended or was pulled before.
   */
  Pull startPull(PullClaim claim, byte[] nonce, Object by) {
    Lease lease = byTransfer.get(claim.transferId());
    if (lease == null || !proves(lease, claim, nonce) || !lease.pin(by)) {
      return null;
    }
    schedule(lease);
    return new Pull(lease);
  }

  private boolean proves(Lease lease, PullClaim claim, byte[] nonce) {
    byte[] key;
    try {
      key = auth.key(lease.transferId, claim.claimant(), lease.pullKey);
    } catch (IllegalArgumentException e) {
      return false;
    }
    return PullAuth.matches(PullAuth.proof(key, nonce, lease.transferId), claim.proof());
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

    /** Whether the lease ended because the first token ended the request. */
    public boolean endedAtFirstToken() {
      return lease.endedAtFirstToken();
    }

    /** Whether the engine still computes the KV: more chunks will become ready. */
    public boolean isComputing() {
      return lease.isComputing();
    }

    /** What the stream ends with: null for KV computed before it was leased. */
    public FirstToken first() {
      return lease.first();
    }

    /** A count of the lease's changes, for {@link #awaitChange}. */
    public long changes() {
      return lease.changes();
    }

    /**
     * Runs {@code wake} once at the lease's next change (more KV computed, computed, ended), on
     * the thread that made it, or at once if one came since {@code seen}.
     */
    public void awaitChange(long seen, Runnable wake) {
      lease.awaitChange(seen, wake);
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

  /**
   * Ends a lease by transfer id, as its prefill instance or the proxy asks; false when it had
   * already ended.
   */
  public boolean release(String transferId) {
    return end(transferId, "released");
  }

  /**
   * Ends a lease that connection {@code by} pulled ({@code why}: released, or the connection
   * went away); false, changing nothing, when the lease is unknown, ended, or was not pulled by
   * {@code by}.
   */
  boolean releasePulled(String transferId, Object by, String why) {
    Lease lease = byTransfer.get(transferId);
    return lease != null && lease.pulledBy(by) && end(transferId, why);
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
    return !byTransfer.isEmpty() || pinnedEnded.get() > 0 || !computing.isEmpty();
  }

  /** Frees every lease (shutdown). */
  public void releaseAll() {
    for (String transferId : byTransfer.keySet()) {
      end(transferId, "released at shutdown");
    }
  }
}
