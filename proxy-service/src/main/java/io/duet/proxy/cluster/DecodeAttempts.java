package io.duet.proxy.cluster;

import io.duet.contract.Failure;
import io.duet.proxy.routing.DecodeTarget;
import io.vertx.core.eventbus.ReplyException;
import java.util.Collections;
import java.util.HashSet;
import java.util.Set;

/**
 * The decode targets that did not take one request, and whether the next may be asked.
 *
 * <p>A decode target that does not take a request is not always the end of it: when it refuses
 * the request as OVERLOADED or UNAVAILABLE, or nothing handles its address any more because it
 * has just left (the registry still lists it until its heartbeats time out), the request goes to
 * the next compatible target that has not failed it, up to {@link #MAX} targets in all, and
 * fails only when none is left. Every attempt hands over the same KV handle, without prefilling
 * again: those failures come before any pull, so the lease is untouched, and within a round
 * trip, far inside the lease. A lease that has expired by this proxy's clock ends the attempts,
 * since the next target could only fail to pull it.
 */
final class DecodeAttempts {

  /** Decode targets asked at most per request, the first one included. */
  static final int MAX = 3;

  private final Set<DecodeTarget> refused = new HashSet<>();

  /** The targets that did not take the request; the next choice excludes them. */
  Set<DecodeTarget> refused() {
    return Collections.unmodifiableSet(refused);
  }

  /**
   * The decode request to {@code target} failed with {@code error}: whether the request may go
   * to another target. When it may, {@code target} is counted as refused.
   */
  boolean mayMoveOn(DecodeTarget target, Throwable error, long leaseExpiresAtMillis,
      long nowMillis) {
    if (!anotherMayTakeIt(error) || refused.size() + 1 >= MAX
        || nowMillis >= leaseExpiresAtMillis) {
      return false;
    }
    refused.add(target);
    return true;
  }

  /**
   * Whether a failed decode request may go to another target: the target refused it as
   * OVERLOADED or UNAVAILABLE, or nobody handles its address any more. Only the reply to the
   * request comes here, and a decode instance replies as soon as it has queued a request, before
   * it pulls the KV or decodes a token; every failure after that comes as a decode event and
   * fails the request, never moves it. Other failures (no reply in time, an error on the way)
   * do not move it either: the target may have taken the request after all.
   */
  private static boolean anotherMayTakeIt(Throwable error) {
    if (!(error instanceof ReplyException reply)) {
      return false;
    }
    return switch (reply.failureType()) {
      case NO_HANDLERS -> true;
      case RECIPIENT_FAILURE -> Failure.of(reply) == Failure.OVERLOADED
          || Failure.of(reply) == Failure.UNAVAILABLE;
      default -> false;
    };
  }
}
