package io.duet.bench.impl;

import io.duet.contract.Addresses;
import io.duet.contract.DecodeEvent;
import io.duet.contract.StreamCredit;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.json.JsonObject;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * One token stream over the event bus, as a decode instance sends it to the proxy: the sender
 * sends {@link DecodeEvent} JSON messages while it has credit; the receiver parses each one and
 * grants credit back in batches of half the window ({@link StreamCredit} on a control
 * address), as the proxy's stream does. The one-way latency of every message is timed with
 * {@link System#nanoTime} (both ends are in this JVM); the send times sit in an array indexed
 * by the event's sequence number, so the messages are exactly the real ones.
 */
public final class EventStream {

  private static final String PING = "bench-ping";

  /** What one stream measured. */
  public record Result(Latency oneWay, long wallNanos, int messages) {
    public double microsPerMessage() {
      return wallNanos / 1e3 / messages;
    }
  }

  private EventStream() {
  }

  /**
   * Streams {@code messages} events from a verticle on {@code senderVertx} to one on
   * {@code receiverVertx} (the same or another member of a cluster).
   */
  public static Future<Result> run(Vertx senderVertx, Vertx receiverVertx, String tag,
      int messages, int window) {
    // The addresses a real stream uses: a proxy's stream address, a decode instance's control.
    String stream = Addresses.proxyStream("bench-" + tag, 0);
    String control = Addresses.decodeControl("bench-" + tag, 0);
    AtomicLongArray sentAt = new AtomicLongArray(messages);
    Receiver receiver = new Receiver(stream, control, tag, sentAt, messages, window);
    Sender sender = new Sender(stream, control, tag, sentAt, messages, window);
    return receiverVertx.deployVerticle(receiver)
        .compose(id -> senderVertx.deployVerticle(sender))
        // Both directions must be routable before the first event: in a cluster a new
        // consumer reaches the other member's view a little later.
        .compose(id -> awaitRoute(senderVertx, stream, 20_000))
        .compose(v -> awaitRoute(receiverVertx, control, 20_000))
        .compose(v -> {
          sender.begin();
          return receiver.done.future();
        })
        .eventually(() -> Future.all(undeploy(receiverVertx, receiver),
            undeploy(senderVertx, sender)));
  }

  private static Future<Void> undeploy(Vertx vertx, AbstractVerticle verticle) {
    String id = verticle.deploymentID();
    return id == null ? Future.succeededFuture() : vertx.undeploy(id);
  }

  private static Future<Void> awaitRoute(Vertx vertx, String address, long timeoutMillis) {
    long deadline = System.currentTimeMillis() + timeoutMillis;
    Promise<Void> routed = Promise.promise();
    ping(vertx, address, deadline, routed);
    return routed.future();
  }

  private static void ping(Vertx vertx, String address, long deadline, Promise<Void> routed) {
    vertx.eventBus().request(address, "ping", new DeliveryOptions().addHeader(PING, "1")
        .setSendTimeout(2_000)).onComplete(reply -> {
          if (reply.succeeded()) {
            routed.complete();
          } else if (System.currentTimeMillis() > deadline) {
            routed.fail(new IllegalStateException("no consumer reachable at " + address + ": "
                + reply.cause().getMessage()));
          } else {
            vertx.setTimer(50, t -> ping(vertx, address, deadline, routed));
          }
        });
  }

  private static boolean answeredPing(Message<?> message) {
    if (message.headers().contains(PING)) {
      message.reply("pong");
      return true;
    }
    return false;
  }

  /** The decode side: sends events while it has credit. */
  private static final class Sender extends AbstractVerticle {
    final String stream;
    final String control;
    final String requestId;
    final AtomicLongArray sentAt;
    final int messages;
    final int window;
    MessageConsumer<Object> credits;
    int credit;
    int sent;

    Sender(String stream, String control, String requestId, AtomicLongArray sentAt, int messages,
        int window) {
      this.stream = stream;
      this.control = control;
      this.requestId = requestId;
      this.sentAt = sentAt;
      this.messages = messages;
      this.window = window;
    }

    @Override
    public void start(Promise<Void> started) {
      credits = vertx.eventBus().consumer(control, message -> {
        if (!answeredPing(message)) {
          credit += StreamCredit.fromJson((JsonObject) message.body()).credits();
          pump();
        }
      });
      credits.completion().onComplete(started);
    }

    void begin() {
      context.runOnContext(v -> {
        credit = window;
        pump();
      });
    }

    void pump() {
      while (credit > 0 && sent < messages) {
        credit--;
        int sequence = sent++;
        boolean last = sent == messages;
        sentAt.set(sequence, System.nanoTime());
        vertx.eventBus().send(stream, new DecodeEvent(requestId, sequence, " the", 1,
            sequence + 1, 128, last ? "length" : null, null, null).toJson());
      }
    }
  }

  /** The proxy side: parses events and grants credit back. */
  private static final class Receiver extends AbstractVerticle {
    final String stream;
    final String control;
    final String requestId;
    final AtomicLongArray sentAt;
    final int messages;
    final int grantBatch;
    final Latency oneWay = new Latency();
    final Promise<Result> done = Promise.promise();
    MessageConsumer<Object> events;
    int received;
    int sinceGrant;

    Receiver(String stream, String control, String requestId, AtomicLongArray sentAt,
        int messages, int window) {
      this.stream = stream;
      this.control = control;
      this.requestId = requestId;
      this.sentAt = sentAt;
      this.messages = messages;
      this.grantBatch = Math.max(1, window / 2);
    }

    @Override
    public void start(Promise<Void> started) {
      events = vertx.eventBus().consumer(stream, this::onEvent);
      events.completion().onComplete(started);
    }

    private void onEvent(Message<Object> message) {
      long now = System.nanoTime();
      if (answeredPing(message)) {
        return;
      }
      DecodeEvent event = DecodeEvent.fromJson((JsonObject) message.body());
      oneWay.recordNanos(now - sentAt.get(event.sequence()));
      received++;
      if (event.isLast() || received == messages) {
        done.tryComplete(new Result(oneWay, now - sentAt.get(0), received));
        return;
      }
      if (++sinceGrant >= grantBatch) {
        vertx.eventBus().send(control, new StreamCredit(requestId, sinceGrant).toJson());
        sinceGrant = 0;
      }
    }
  }
}
