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

class AttemptsTest {

  private static final DecodeTarget D0 = new DecodeTarget("d0", 0);
  private static final DecodeTarget D1 = new DecodeTarget("d1", 0);
  private static final DecodeTarget D2 = new DecodeTarget("d2", 0);

  private final Attempts<DecodeTarget> attempts = new Attempts<>();

  private static ReplyException refused(Failure failure) {
    return new ReplyException(ReplyFailure.RECIPIENT_FAILURE, failure.code(),
        failure.message("no"));
  }

  @Test
  void aRefusalAsOverloadedOrUnavailableOrAGoneAddressMovesTheRequestOn() {
    assertTrue(attempts.mayMoveOn(D0, refused(Failure.OVERLOADED)));
    assertTrue(new Attempts<DecodeTarget>().mayMoveOn(D0, refused(Failure.UNAVAILABLE)));
    assertTrue(new Attempts<DecodeTarget>().mayMoveOn(D0,
        new ReplyException(ReplyFailure.NO_HANDLERS, "no handlers")));
    assertEquals(Set.of(D0), attempts.refused());
  }

  @ParameterizedTest
  @EnumSource(value = Failure.class, names = {"OVERLOADED", "UNAVAILABLE"},
      mode = EnumSource.Mode.EXCLUDE)
  void otherFailuresOfTheInstanceEndTheRequest(Failure failure) {
    assertFalse(attempts.mayMoveOn(D0, refused(failure)));
    assertEquals(Set.of(), attempts.refused());
  }

  @Test
  void noReplyInTimeOrAnErrorOnTheWayEndsTheRequest() {
    // the instance may have taken the request after all
    assertFalse(attempts.mayMoveOn(D0, new ReplyException(ReplyFailure.TIMEOUT, "timed out")));
    assertFalse(attempts.mayMoveOn(D0, new ReplyException(ReplyFailure.ERROR, "error")));
    assertFalse(attempts.mayMoveOn(D0, new IllegalStateException("closed")));
  }

  /**
   * What Vert.x answers when the recipient's consumer goes away (an instance stopping) with the
   * request still queued: nothing of it ran, so another instance may take it.
   */
  @Test
  void aRequestDiscardedUnreadByAStoppingInstanceMovesOnAsUnavailable() {
    ReplyException discarded = new ReplyException(ReplyFailure.TIMEOUT,
        "Discarded the request. address: __vertx.reply.1, repliedAddress: duet.decode.d0.0");
    assertTrue(attempts.mayMoveOn(D0, discarded));
    assertEquals(Failure.UNAVAILABLE, Failure.of(discarded), "503, not 504");
    assertEquals(Failure.TIMEOUT, Failure.of(new ReplyException(ReplyFailure.TIMEOUT, "timed out")));
  }

  @Test
  void atMostMaxInstancesAreAsked() {
    assertEquals(3, Attempts.MAX);
    assertTrue(attempts.mayMoveOn(D0, refused(Failure.OVERLOADED)));
    assertTrue(attempts.mayMoveOn(D1, refused(Failure.OVERLOADED)));
    assertFalse(attempts.mayMoveOn(D2, refused(Failure.OVERLOADED)),
        "the third refusal is the last");
    assertEquals(Set.of(D0, D1), attempts.refused());
  }

  @Test
  void anExcludedInstanceIsNotChosenAgainAndCountsAsAsked() {
    Attempts<String> prefills = new Attempts<>();
    prefills.exclude("p-lost");
    assertEquals(Set.of("p-lost"), prefills.refused());
    assertTrue(prefills.mayMoveOn("p1", refused(Failure.UNAVAILABLE)));
    assertFalse(prefills.mayMoveOn("p2", refused(Failure.UNAVAILABLE)),
        "the lost instance and p1 were asked: p2 is the third");
  }
}
