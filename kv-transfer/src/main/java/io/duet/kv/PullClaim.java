package io.duet.kv;

import java.nio.charset.StandardCharsets;
import java.util.Base64;

/**
 * What a PULL frame carries: the transfer id, the decode instance that claims the lease, and its
 * proof of the lease's pull key ({@link PullAuth}), as three lines of UTF-8 text with the proof
 * in base64url.
 */
record PullClaim(String transferId, String claimant, byte[] proof) {

  KvFrame toFrame() {
    return KvFrame.text(KvFrame.Type.PULL, transferId + "\n" + claimant + "\n"
        + Base64.getUrlEncoder().withoutPadding().encodeToString(proof));
  }

  /** The claim of a PULL frame's payload; null when it is not one. */
  static PullClaim parse(KvFrame frame) {
    String[] fields = frame.payload().toString(StandardCharsets.UTF_8).split("\n", -1);
    if (fields.length != 3 || fields[0].isEmpty()) {
      return null;
    }
    try {
      return new PullClaim(fields[0], fields[1], Base64.getUrlDecoder().decode(fields[2]));
    } catch (IllegalArgumentException e) {
      return null;
    }
  }
}
