package io.duet.proxy.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.Failure;
import io.duet.proxy.routing.DecodeTarget;
import io.vertx.core.eventbus.ReplyException;
import io.vertx.core.eventbus.ReplyFailure;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

class DecodeAttemptsTest {

  private static final long NOW = 1_000_000;
  private static final long LEASE_ENDS = NOW + 30_000;
  private static final DecodeTarget D0 = new DecodeTarget("d0", 0);
  private static final DecodeTarget D1 = new DecodeTarget("d1", 0);
  private static final DecodeTarget D2 = new DecodeTarget("d2", 0);

  private final DecodeAttempts attempts = new DecodeAttempts();

  private static ReplyException refused(Failure failure) {
    return new ReplyException(ReplyFailure.RECIPIENT_FAILURE, failure.code(),
        failure.message("no"));
  }

  @Test
  void aRefusalAsOverloadedOrUnavailableOrAGoneAddressMovesTheRequestOn() {
    assertTrue(attempts.mayMoveOn(D0, refused(Failure.OVERLOADED), LEASE_ENDS, NOW));
    assertTrue(new DecodeAttempts().mayMoveOn(D0, refused(Failure.UNAVAILABLE), LEASE_ENDS, NOW));
    assertTrue(new DecodeAttempts().mayMoveOn(D0,
        new ReplyException(ReplyFailure.NO_HANDLERS, "no handlers"), LEASE_ENDS, NOW));
    assertEquals(Set.of(D0), attempts.refused());
  }

  @ParameterizedTest
  @EnumSource(value = Failure.class, names = {"OVERLOADED", "UNAVAILABLE"},
      mode = EnumSource.Mode.EXCLUDE)
  void otherFailuresOfTheInstanceEndTheRequest(Failure failure) {
    assertFalse(attempts.mayMoveOn(D0, refused(failure), LEASE_ENDS, NOW));
    assertEquals(Set.of(), attempts.refused());
  }

  @Test
  void noReplyInTimeOrAnErrorOnTheWayEndsTheRequest() {
    // the instance may have taken the request after all
    assertFalse(attempts.mayMoveOn(D0, new ReplyException(ReplyFailure.TIMEOUT, "timed out"),
        LEASE_ENDS, NOW));
    assertFalse(attempts.mayMoveOn(D0, new ReplyException(ReplyFailure.ERROR, "error"),
        LEASE_ENDS, NOW));
    assertFalse(attempts.mayMoveOn(D0, new IllegalStateException("closed"), LEASE_ENDS, NOW));
  }

  @Test
  void atMostMaxTargetsAreAsked() {
    assertEquals(3, DecodeAttempts.MAX);
    assertTrue(attempts.mayMoveOn(D0, refused(Failure.OVERLOADED), LEASE_ENDS, NOW));
    assertTrue(attempts.mayMoveOn(D1, refused(Failure.OVERLOADED), LEASE_ENDS, NOW));
    assertFalse(attempts.mayMoveOn(D2, refused(Failure.OVERLOADED), LEASE_ENDS, NOW),
        "the third refusal is the last");
    assertEquals(Set.of(D0, D1), attempts.refused());
  }

  @Test
  void anExpiredLeaseEndsTheAttempts() {
    assertFalse(attempts.mayMoveOn(D0, refused(Failure.OVERLOADED), NOW, NOW));
    assertEquals(Set.of(), attempts.refused());
  }
}
