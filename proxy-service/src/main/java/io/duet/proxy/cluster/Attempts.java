package io.duet.proxy.cluster;

import io.duet.contract.Failure;
import io.vertx.core.eventbus.ReplyException;
import java.util.Collections;
import java.util.HashSet;
import java.util.Set;

/**
 * The instances (prefill instance ids, or decode targets) that did not take one request at one
 * stage, and whether the next may be asked.
 *
 * <p>An instance that does not take a request is not always the end of it: when it refuses the
 * request as OVERLOADED or UNAVAILABLE (it is full, or draining), or nothing handles its address
 * any more because it has just left (the registry may still list it for a moment), the request
 * goes to the next compatible instance that has not failed it (likewise when it went away with
 * the request still queued, see {@link Failure#discarded}), up to {@link #MAX} instances in
 * all, and fails only when none is left. Such a refusal comes before the instance has done
 * anything for the request. Only the reply to the request comes here: a prefill instance answers
 * with the prefilled prompt, a decode instance as soon as it has queued the request, before it
 * pulls the KV or decodes a token; every failure after a decode instance took a request comes as
 * a decode event and never moves it. Other failures (no reply in time, an error on the way) do
 * not move it either: the instance may have taken the request after all.
 *
 * @param <T> what identifies an instance
 */
final class Attempts<T> {

  /** Instances asked at most per request and stage, the first one included. */
  static final int MAX = 3;

  private final Set<T> refused = new HashSet<>();

  /** The instances that did not take the request; the next choice excludes them. */
  Set<T> refused() {
    return Collections.unmodifiableSet(refused);
  }

  /**
   * The request to {@code instance} failed with {@code error}: whether it may go to another
   * instance. When it may, {@code instance} is counted as refused.
   */
  boolean mayMoveOn(T instance, Throwable error) {
    if (!anotherMayTakeIt(error) || refused.size() + 1 >= MAX) {
      return false;
    }
    refused.add(instance);
    return true;
  }

  /**
   * Excludes {@code instance} from the next choices: it took the request and was lost before
   * finishing its part. It counts as one of the {@link #MAX} instances asked.
   */
  void exclude(T instance) {
    refused.add(instance);
  }

  /**
   * Whether a failed request may go to another instance: it refused it as OVERLOADED or
   * UNAVAILABLE, or nobody handles its address any more.
   */
  private static boolean anotherMayTakeIt(Throwable error) {
    if (!(error instanceof ReplyException reply)) {
      return false;
    }
    return switch (reply.failureType()) {
      case NO_HANDLERS -> true;
      case TIMEOUT -> Failure.discarded(reply);
      case RECIPIENT_FAILURE -> Failure.of(reply) == Failure.OVERLOADED
          || Failure.of(reply) == Failure.UNAVAILABLE;
      default -> false;
    };
  }
}
