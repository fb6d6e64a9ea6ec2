package io.duet.kv;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/**
 * The pull keys of KV leases and the proofs that a decode instance holds one. A transfer id
 * alone names a lease but does not open it: it travels on the event bus and may be seen by
 * others. To PULL, the decode instance proves the lease's pull key by an HMAC-SHA256 over the
 * nonce the KV server sent when the connection opened and the transfer id, so that neither the
 * key nor a reusable proof ever crosses the KV channel.
 *
 * <p>The key is either
 * <ul>
 *   <li>per lease ({@link #perLease()}): 32 random bytes the prefill instance draws when it
 *       leases the KV and hands, in the {@code KvHandle}, to the proxy, which passes it in the
 *       decode request to the one decode instance it chose and in nothing else; or</li>
 *   <li>derived ({@link #withSecret}): HMAC-SHA256(cluster secret, transfer id LF decode
 *       instance id), which every instance holding the cluster secret computes and which never
 *       travels at all.</li>
 * </ul>
 * Immutable and thread-safe.
 */
public final class PullAuth {

  private static final String HMAC = "HmacSHA256";
  private static final int KEY_BYTES = 32;
  /** Bytes of the nonce a KV server sends on each new connection. */
  public static final int NONCE_BYTES = 16;

  private final SecureRandom random = new SecureRandom();
  /** Null: per-lease keys. */
  private final byte[] clusterSecret;

  private PullAuth(byte[] clusterSecret) {
    this.clusterSecret = clusterSecret;
  }

  /** Random keys, one per lease, carried by the KV handle. */
  public static PullAuth perLease() {
    return new PullAuth(null);
  }

  /** Keys derived from a secret every instance of the cluster holds; none is carried. */
  public static PullAuth withSecret(String clusterSecret) {
    if (clusterSecret.isEmpty()) {
      throw new IllegalArgumentException("the cluster secret is empty");
    }
    return new PullAuth(clusterSecret.getBytes(StandardCharsets.UTF_8));
  }

  /** Whether keys are derived from a cluster secret. */
  public boolean derived() {
    return clusterSecret != null;
  }

  /**
   * The pull key of a new lease as the KV handle carries it (base64url); null when keys are
   * derived from the cluster secret, so that nothing secret travels.
   */
  String newLeaseKey() {
    if (derived()) {
      return null;
    }
    byte[] key = new byte[KEY_BYTES];
    random.nextBytes(key);
    return Base64.getUrlEncoder().withoutPadding().encodeToString(key);
  }

  /** A fresh nonce for a new KV connection. */
  byte[] newNonce() {
    byte[] nonce = new byte[NONCE_BYTES];
    random.nextBytes(nonce);
    return nonce;
  }

  /**
   * The key that opens lease {@code transferId} for decode instance {@code claimant}: the
   * derived one with a cluster secret, else {@code leaseKey} (the handle's) decoded.
   *
   * @throws IllegalArgumentException when there is no key to use (no secret and no lease key, or
   *     one that is not base64url)
   */
  byte[] key(String transferId, String claimant, String leaseKey) {
    if (derived()) {
      return hmac(clusterSecret, transferId + "\n" + claimant);
    }
    if (leaseKey == null) {
      throw new IllegalArgumentException("the KV handle carries no pull key and no cluster "
          + "secret is set (cluster.secret must be the same on every instance)");
    }
    return Base64.getUrlDecoder().decode(leaseKey);
  }

  /** The proof of {@code key} for one PULL: HMAC-SHA256(key, nonce || transfer id). */
  static byte[] proof(byte[] key, byte[] nonce, String transferId) {
    byte[] id = transferId.getBytes(StandardCharsets.UTF_8);
    byte[] message = new byte[nonce.length + id.length];
    System.arraycopy(nonce, 0, message, 0, nonce.length);
    System.arraycopy(id, 0, message, nonce.length, id.length);
    return hmac(key, message);
  }

  /** Compares in constant time, so that timing tells nothing of the expected proof. */
  static boolean matches(byte[] expected, byte[] given) {
    return MessageDigest.isEqual(expected, given);
  }

  private static byte[] hmac(byte[] key, String message) {
    return hmac(key, message.getBytes(StandardCharsets.UTF_8));
  }

  private static byte[] hmac(byte[] key, byte[] message) {
    try {
      Mac mac = Mac.getInstance(HMAC);
      mac.init(new SecretKeySpec(key, HMAC));
      return mac.doFinal(message);
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("HmacSHA256 is part of every JDK", e);
    }
  }
}
