package io.duet.decode.impl;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.duet.contract.DecodeEvent;
import io.duet.contract.DecodeRequest;
import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The events a {@link StreamSender} sends for the tokens it is given. */
@Timeout(30)
class StreamSenderTest {

  private static final String ADDRESS = "test.stream";
  private static final long STEP_NANOS = TimeUnit.MILLISECONDS.toNanos(10);

  private final Vertx vertx = Vertx.vertx();
  private final AtomicLong now = new AtomicLong();

  @AfterEach
  void close() throws Exception {
    vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }

  @Test
  void aStreamedRequestGetsAnEventPerToken() throws Exception {
    List<DecodeEvent> events = decode(false, true, 6);
    assertEquals(5, events.size(), "the first token went out from the prefill result");
    assertText(events, 6);
  }

  @Test
  void aCoalescedRequestWhoseRequesterHasTheFirstTokenGetsOneEvent() throws Exception {
    List<DecodeEvent> events = decode(true, true, 16);
    assertEquals(1, events.size());
    assertEquals(15, events.get(0).tokens());
    assertText(events, 16);
  }

  @Test
  void aCoalescedRequestGetsItsFirstTokenAtOnce() throws Exception {
    List<DecodeEvent> events = decode(true, false, 16);
    assertEquals(List.of(1, 15), events.stream().map(DecodeEvent::tokens).toList(),
        "the time to first token does not wait for the end");
    assertText(events, 16);
  }

  @Test
  void aCoalescedRequestHearsFromItsDecoderWhileItLasts() throws Exception {
    int steps = 101;
    List<DecodeEvent> events = decode(true, true, steps);
    long heldSteps = DecodeRequest.COALESCED_EVENT_MILLIS * 1_000_000 / STEP_NANOS;
    assertEquals(steps / heldSteps + 1, events.size(), "an event at least every "
        + DecodeRequest.COALESCED_EVENT_MILLIS + " ms, and the last");
    assertText(events, steps);
  }

  /**
   * Decodes {@code tokens} tokens ("t0", "t1"...), one every {@link #STEP_NANOS} by the
   * sender's clock, the last with finish reason "length", and returns the events sent.
   */
  private List<DecodeEvent> decode(boolean coalesce, boolean firstTokenSent, int tokens)
      throws Exception {
    List<DecodeEvent> events = new CopyOnWriteArrayList<>();
    CompletableFuture<Void> all = new CompletableFuture<>();
    vertx.eventBus().<JsonObject>consumer(ADDRESS, message -> {
      if (message.body().isEmpty()) {
        all.complete(null);
      } else {
        events.add(DecodeEvent.fromJson(message.body()));
      }
    }).completion().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    StreamSender sender = new StreamSender(vertx.eventBus(), "r", ADDRESS, 5, 1_000,
        firstTokenSent, coalesce, now::get);
    for (int i = 0; i < tokens; i++) {
      now.addAndGet(STEP_NANOS);
      sender.add("t" + i, 1, i == tokens - 1 ? "length" : null);
    }
    // Messages from one sender to a local address arrive in order: this one comes last.
    vertx.eventBus().send(ADDRESS, new JsonObject());
    all.get(10, TimeUnit.SECONDS);
    return events;
  }

  /** The events carry the text of every token the client did not get from the prefill. */
  private static void assertText(List<DecodeEvent> events, int tokens) {
    StringBuilder expected = new StringBuilder();
    for (int i = tokens - events.stream().mapToInt(DecodeEvent::tokens).sum(); i < tokens; i++) {
      expected.append('t').append(i);
    }
    assertEquals(expected.toString(),
        String.join("", events.stream().map(DecodeEvent::text).toList()));
    DecodeEvent last = events.get(events.size() - 1);
    assertEquals("length", last.finishReason());
    assertEquals(tokens, last.completionTokens());
    for (int i = 0; i < events.size(); i++) {
      assertEquals(i, events.get(i).sequence());
    }
  }
}
