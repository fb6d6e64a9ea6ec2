package io.duet.examples.eventbus;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.CompletionAccepted;
import io.duet.contract.CompletionRequest;
import io.duet.contract.DecodeEvent;
import io.duet.contract.SamplingSpec;
import io.duet.contract.StreamCredit;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.json.JsonObject;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * One completion over the event bus, as the contract describes it ({@link CompletionRequest}):
 * listen on a stream address of our own, send the request to {@link Addresses#COMPLETIONS},
 * print each {@link DecodeEvent}'s text as it arrives and hand the credit back to the proxy's
 * control address as the events are consumed; optionally {@link Cancel} after some events.
 * A verticle, so that the reply and the events are handled on one thread, in arrival order.
 */
final class CompletionClient extends AbstractVerticle {

  private final Options options;
  private final PrintStream out;
  private final String streamAddress = Addresses.clientStream(UUID.randomUUID().toString());
  private final Promise<DecodeEvent> last = Promise.promise();
  /** Credit handed back in batches of half the window, as the proxy does with decode. */
  private final int creditBatch;
  private CompletionAccepted accepted;
  private int received;
  private int consumedSinceGrant;

  CompletionClient(Options options, PrintStream out) {
    this.options = options;
    this.out = out;
    this.creditBatch = Math.max(1, options.credits() / 2);
  }

  /** The stream's last event: its finish reason, or its failure (CANCELLED after a cancel). */
  Future<DecodeEvent> last() {
    return last.future();
  }

  @Override
  public void start() {
    MessageConsumer<JsonObject> stream = vertx.eventBus().consumer(streamAddress,
        message -> onEvent(DecodeEvent.fromJson(message.body())));
    // Once registered, the cluster can route events to it: only then may the request go.
    stream.completion()
        .compose(registered -> vertx.eventBus().<JsonObject>request(Addresses.COMPLETIONS,
            request().toJson()))
        .onSuccess(reply -> accepted = CompletionAccepted.fromJson(reply.body()))
        // A refusal: BAD_REQUEST naming the problem, UNAUTHORIZED, or no proxy at all.
        .onFailure(last::tryFail);
  }

  private CompletionRequest request() {
    SamplingSpec sampling = new SamplingSpec(options.temperature(), 0, 1f,
        System.nanoTime(), options.maxTokens(), List.of(), List.of(), options.ignoreEos());
    CompletionRequest request;
    if (options.chat()) {
      List<CompletionRequest.Message> messages = new ArrayList<>();
      if (options.system() != null) {
        messages.add(new CompletionRequest.Message("system", options.system()));
      }
      messages.add(new CompletionRequest.Message("user", options.prompt()));
      request = CompletionRequest.ofChat(options.model(), messages, sampling, streamAddress,
          options.credits());
    } else {
      request = CompletionRequest.ofPrompt(options.model(), options.prompt(), sampling,
          streamAddress, options.credits());
    }
    return request.withApiKey(options.apiKey());
  }

  /** The proxy sends the accepted reply before the first event, so {@code accepted} is set. */
  private void onEvent(DecodeEvent event) {
    out.print(event.text());
    out.flush();
    received++;
    if (event.isLast()) {
      last.tryComplete(event);
      return;
    }
    if (received == options.cancelAfter()) {
      cancel();
    }
    if (++consumedSinceGrant == creditBatch) {
      vertx.eventBus().send(accepted.controlAddress(),
          new StreamCredit(accepted.requestId(), consumedSinceGrant).toJson());
      consumedSinceGrant = 0;
    }
  }

  /** The reply is the stream's last event; a request that already ended has sent its own. */
  private void cancel() {
    vertx.eventBus().<JsonObject>request(accepted.controlAddress(),
            new Cancel(accepted.requestId(), null, "--cancel-after " + received).toJson())
        .onSuccess(reply -> last.tryComplete(DecodeEvent.fromJson(reply.body())));
  }
}
