package io.duet.proxy;

import static io.duet.service.ServiceTests.eventually;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.CompletionAccepted;
import io.duet.contract.CompletionRequest;
import io.duet.contract.CompletionRequest.Message;
import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.SamplingSpec;
import io.duet.contract.StreamCredit;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.eventbus.ReplyException;
import io.vertx.core.eventbus.ReplyFailure;
import io.vertx.core.json.JsonObject;
import io.vertx.junit5.Timeout;
import io.vertx.junit5.VertxExtension;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Completions for event-bus clients against a scripted backend: a proxy on a local Vert.x, and a
 * client that consumes its own stream address and speaks the contract's records.
 */
@ExtendWith(VertxExtension.class)
@Timeout(value = 20, timeUnit = TimeUnit.SECONDS)
class EventBusCompletionsTest {

  private static final String MODEL = StubBackend.MODEL;
  private static final String PROXY_ID = "proxy-eb";
  private static final Duration WAIT = Duration.ofSeconds(10);

  private Vertx vertx;
  private StubBackend backend;
  private ProxyVerticle proxy;

  @BeforeEach
  void setUp(Vertx vertx) throws Exception {
    this.vertx = vertx;
    backend = new StubBackend(vertx);
    proxy = deploy(new ProxyOptions());
  }

  private ProxyVerticle deploy(ProxyOptions options) throws Exception {
    ProxyVerticle verticle = new ProxyVerticle(() -> backend, options.setHost("127.0.0.1")
        .setPort(0).setInstances(1).setInstanceId(PROXY_ID));
    await(vertx.deployVerticle(verticle));
    return verticle;
  }

  /** An event-bus client: its stream address, and the events that came to it. */
  private final class Client {
    final String address = Addresses.clientStream(UUID.randomUUID().toString());
    final List<DecodeEvent> events = new CopyOnWriteArrayList<>();
    final Promise<DecodeEvent> last = Promise.promise();
    final MessageConsumer<JsonObject> consumer;

    Client() throws Exception {
      consumer = vertx.eventBus().consumer(address, message -> {
        DecodeEvent event = DecodeEvent.fromJson(message.body());
        events.add(event);
        if (event.isLast()) {
          last.tryComplete(event);
        }
      });
      await(consumer.completion());
    }

    CompletionRequest prompt(String text, int credits) {
      return CompletionRequest.ofPrompt(MODEL, text, SamplingSpec.greedy(0), address, credits);
    }

    Future<CompletionAccepted> send(CompletionRequest request) {
      return send(request.toJson());
    }

    Future<CompletionAccepted> send(Object body) {
      return vertx.eventBus().<JsonObject>request(Addresses.COMPLETIONS, body)
          .map(reply -> CompletionAccepted.fromJson(reply.body()));
    }

    void grant(CompletionAccepted accepted, int credits) {
      vertx.eventBus().send(accepted.controlAddress(),
          new StreamCredit(accepted.requestId(), credits).toJson());
    }

    Future<DecodeEvent> cancel(CompletionAccepted accepted) {
      return vertx.eventBus().<JsonObject>request(accepted.controlAddress(),
              new Cancel(accepted.requestId(), null, "test").toJson())
          .map(reply -> DecodeEvent.fromJson(reply.body()));
    }

    String text() {
      StringBuilder text = new StringBuilder();
      events.forEach(event -> text.append(event.text()));
      return text.toString();
    }

    List<Integer> sequences() {
      return events.stream().map(DecodeEvent::sequence).toList();
    }
  }

  // ---- the happy paths ------------------------------------------------------------------------

  @Test
  void aPromptIsAcceptedAndItsEventsStreamToTheClientAndCountInTheProxysMetrics()
      throws Exception {
    Client client = new Client();
    CompletionAccepted accepted = await(client.send(client.prompt("Say hello", 8)));

    assertTrue(accepted.requestId().startsWith("cmpl-"), accepted.requestId());
    assertEquals(Addresses.proxyControl(PROXY_ID, 0), accepted.controlAddress());
    DecodeEvent last = await(client.last.future());
    assertEquals("Hello world", client.text());
    assertEquals(List.of(0, 1), client.sequences());
    assertEquals("stop", last.finishReason());
    assertEquals(List.of(5, 2), List.of(last.promptTokens(), last.completionTokens()));
    client.events.forEach(event -> assertEquals(accepted.requestId(), event.requestId()));

    CompletionJob job = backend.jobs.get(0);
    assertEquals(accepted.requestId(), job.requestId());
    assertEquals("Say hello", job.prompt());
    assertEquals(List.of(), job.promptTokens());
    assertEquals(ProxyOptions.DEFAULT_COMPLETION_MAX_TOKENS, job.sampling().maxTokens(),
        "maxTokens 0 takes the default of an HTTP completion");
    eventually("the request counted as answered", WAIT,
        () -> metrics().contains("duet_requests_total{endpoint=\"eventbus\",status=\"200\"} 1.0"));
    String metrics = metrics();
    assertTrue(metrics.contains("duet_ttft_seconds_count 1"), metrics);
    assertTrue(metrics.contains("duet_tpot_seconds_count 1"), metrics);
    assertTrue(metrics.contains("duet_e2e_seconds_count 1"), metrics);
    assertTrue(metrics.contains("duet_requests_in_flight 0.0"), metrics);
  }

  /**
   * A proxy that stops with a drain timeout takes no new event-bus completion (nothing consumes
   * the address any more) and lets the running one stream to its last event, credits included.
   */
  @Test
  void aStoppingProxyFinishesItsRunningCompletionsAndTakesNoNewOne() throws Exception {
    await(vertx.undeploy(proxy.deploymentID()));
    proxy = deploy(new ProxyOptions().setDrainTimeoutMillis(WAIT.toMillis()));
    String[] pieces = IntStream.range(0, 20).mapToObj(i -> "x").toArray(String[]::new);
    backend.script = job -> StubBackend.tokens(job, 5, "length", pieces).withDelay(20);
    Client client = new Client();
    CompletionAccepted accepted = await(client.send(client.prompt("p", 4)));
    eventually("the first credits used", WAIT, () -> client.events.size() == 4);

    Future<Void> undeployed = vertx.undeploy(proxy.deploymentID());
    eventually("the proxy draining", WAIT, () -> proxy.state() == InstanceInfo.State.DRAINING);
    eventually("the completions address no longer consumed", WAIT, () -> {
      try {
        await(client.send(client.prompt("late", 4)));
        return false;
      } catch (ReplyException e) {
        return e.failureType() == ReplyFailure.NO_HANDLERS;
      } catch (Exception e) {
        return false;
      }
    });
    client.grant(accepted, 16);
    assertEquals("length", await(client.last.future()).finishReason());
    assertEquals("x".repeat(20), client.text());
    await(undeployed);
    assertEquals(1, backend.jobs.size(), "the late request started no job");
    assertEquals(0, backend.cancels.get());
  }

  @Test
  void chatMessagesAreRenderedLikeOverHttpAndTokenIdsAndChosenIdsReachTheJob()
      throws Exception {
    Client client = new Client();
    CompletionAccepted chat = await(client.send(CompletionRequest.ofChat(MODEL, List.of(
        new Message("system", "You are terse."), new Message("user", "Hello")),
        SamplingSpec.greedy(0), client.address, 8)));
    assertTrue(chat.requestId().startsWith("chatcmpl-"), chat.requestId());
    CompletionJob chatJob = job(0);
    assertEquals("[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello [/INST]", chatJob.prompt());
    assertEquals(ProxyOptions.DEFAULT_CHAT_MAX_TOKENS, chatJob.sampling().maxTokens());

    CompletionAccepted tokens = await(client.send(CompletionRequest.ofTokens(MODEL,
        new int[] {1, 403, 27}, SamplingSpec.greedy(7), client.address, 8)
        .withRequestId("my-own-id")));
    assertEquals("my-own-id", tokens.requestId());
    CompletionJob tokenJob = job(1);
    assertEquals("my-own-id", tokenJob.requestId());
    assertEquals(List.of(1, 403, 27), tokenJob.promptTokens());
    assertNull(tokenJob.prompt());
    assertEquals(7, tokenJob.sampling().maxTokens());
  }

  @Test
  void aFailureOfTheJobIsTheLastEvent() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, null, "Hi")
        .thenFail(Failure.OVERLOADED, "no decode slot");
    Client client = new Client();
    await(client.send(client.prompt("p", 8)));
    DecodeEvent last = await(client.last.future());
    assertEquals(List.of(0, 1), client.sequences());
    assertEquals(Failure.OVERLOADED.name(), last.failure());
    assertEquals("no decode slot", last.error());
    eventually("the failure counted with its HTTP status", WAIT,
        () -> metrics().contains("duet_requests_total{endpoint=\"eventbus\",status=\"429\"} 1.0"));
  }

  // ---- refusals -------------------------------------------------------------------------------

  @Test
  void badRequestsAreRefusedAsBadRequestsNamingTheProblem() throws Exception {
    Client client = new Client();
    CompletionRequest ok = client.prompt("hi", 8);
    SamplingSpec greedy = SamplingSpec.greedy(0);
    Map<String, Object> refusals = Map.ofEntries(
        Map.entry("model", new CompletionRequest(null, null, "hi", null, null, greedy,
            client.address, 8, null).toJson()),
        Map.entry("`nope` does not exist", new CompletionRequest(null, "nope", "hi", null, null,
            greedy, client.address, 8, null).toJson()),
        Map.entry("you must provide a prompt", new CompletionRequest(null, MODEL, null, null,
            null, greedy, client.address, 8, null).toJson()),
        Map.entry("only one of prompt, promptTokens and messages", new CompletionRequest(null,
            MODEL, "hi", new int[] {1}, null, greedy, client.address, 8, null).toJson()),
        Map.entry("promptTokens", CompletionRequest.ofTokens(MODEL, new int[] {1, -5}, greedy,
            client.address, 8).toJson()),
        Map.entry("sampling.temperature", CompletionRequest.ofPrompt(MODEL, "hi",
            new SamplingSpec(3f, 0, 1f, 0, 0, List.of(), List.of(), false), client.address, 8)
            .toJson()),
        Map.entry("sampling.topP", CompletionRequest.ofPrompt(MODEL, "hi",
            new SamplingSpec(1f, 0, 0f, 0, 0, List.of(), List.of(), false), client.address, 8)
            .toJson()),
        Map.entry("sampling.maxTokens", CompletionRequest.ofPrompt(MODEL, "hi",
            SamplingSpec.greedy(-3), client.address, 8).toJson()),
        Map.entry("sampling.stop", CompletionRequest.ofPrompt(MODEL, "hi",
            new SamplingSpec(1f, 0, 1f, 0, 0, List.of(), List.of("a", "b", "c", "d", "e"), false),
            client.address, 8).toJson()),
        Map.entry("messages[0].role", CompletionRequest.ofChat(MODEL,
            List.of(new Message("tool", "x")), greedy, client.address, 8).toJson()),
        Map.entry("the last message must be from the user", CompletionRequest.ofChat(MODEL,
            List.of(new Message("user", "a"), new Message("assistant", "b")), greedy,
            client.address, 8).toJson()),
        Map.entry("sampling", ok.toJson().put("sampling", null)),
        Map.entry("streamAddress", ok.toJson().put("streamAddress", null)),
        Map.entry("initialCredits", ok.toJson().put("initialCredits", 0)),
        Map.entry("requestId", ok.withRequestId(" ").toJson()),
        Map.entry("version", ok.toJson().put("v", 2)),
        Map.entry("JSON object", "a string"));
    for (Map.Entry<String, Object> refusal : refusals.entrySet()) {
      Exception e = assertThrows(Exception.class, () -> await(client.send(refusal.getValue())),
          refusal.getKey());
      ReplyException reply = assertInstanceOf(ReplyException.class, e, refusal.getKey());
      assertEquals(Failure.BAD_REQUEST, Failure.of(reply), refusal.getKey());
      assertTrue(Failure.text(reply).contains(refusal.getKey()),
          refusal.getKey() + " in: " + Failure.text(reply));
    }
    assertEquals(List.of(), backend.jobs, "no refused request reached the backend");
    assertTrue(client.events.isEmpty());
    eventually("the refusals counted with their HTTP statuses", WAIT, () -> metrics().contains(
        "duet_requests_total{endpoint=\"eventbus\",status=\"400\"} " + (refusals.size() - 1)
            + ".0"));
    assertTrue(metrics().contains("duet_requests_total{endpoint=\"eventbus\",status=\"404\"} 1.0"),
        metrics());
  }

  @Test
  void aBackendAtItsLimitsIsRefusedWithAnOverloadedReplyBeforeAnyJobStarts() throws Exception {
    backend.overloaded = "the queue is full";
    Client client = new Client();
    Exception e = assertThrows(Exception.class, () -> await(client.send(client.prompt("p", 8))));
    assertEquals(Failure.OVERLOADED, Failure.of(e));
    assertEquals("the queue is full", Failure.text(e));
    assertEquals(List.of(), backend.jobs);
    eventually("the refusal counted as HTTP counts it", WAIT, () -> metrics().contains(
        "duet_requests_total{endpoint=\"eventbus\",status=\"429\"} 1.0"));
  }

  @Test
  void aModelTheBackendExpectsButCannotServeNowIsRefusedAsUnavailable() throws Exception {
    backend.models = List.of();
    backend.expected = List.of(StubBackend.MODEL);
    Client client = new Client();
    Exception e = assertThrows(Exception.class, () -> await(client.send(client.prompt("p", 8))));
    assertEquals(Failure.UNAVAILABLE, Failure.of(e));
    assertEquals(List.of(), backend.jobs);
  }

  @Test
  void anApiKeyIsRequiredWhenTheProxyHasOne() throws Exception {
    await(vertx.undeploy(proxy.deploymentID()));
    proxy = deploy(new ProxyOptions().setApiKey("sk-duet-test"));
    Client client = new Client();
    CompletionRequest request = client.prompt("p", 8);
    List<CompletionRequest> refused = List.of(request, request.withApiKey("sk-wrong"),
        request.withApiKey("sk-wrong").withRequestId(" "));
    for (CompletionRequest wrong : refused) {
      Exception e = assertThrows(Exception.class, () -> await(client.send(wrong)));
      assertEquals(Failure.UNAUTHORIZED, Failure.of(e), wrong.apiKey());
    }
    assertEquals(List.of(), backend.jobs);

    await(client.send(request.withApiKey("sk-duet-test")));
    assertEquals("stop", await(client.last.future()).finishReason());
    eventually("the refusals counted as 401", WAIT, () -> metrics().contains(
        "duet_requests_total{endpoint=\"eventbus\",status=\"401\"} 3.0"));
  }

  // ---- flow control, cancel, clients that go away ---------------------------------------------

  @Test
  void aClientThatGrantsNothingGetsNoMoreThanItsInitialCredits() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, "length", pieces(10));
    Client client = new Client();
    CompletionAccepted accepted = await(client.send(client.prompt("p", 3)));
    await(backend.paused.future());

    // The reply to a cancel is the stream's last event, numbered after every event sent.
    DecodeEvent last = await(client.cancel(accepted));
    assertEquals(3, last.sequence(), "exactly the 3 credited events were sent");
    assertEquals(Failure.CANCELLED.name(), last.failure());
    assertEquals(3, last.completionTokens());
    eventually("the 3 events arrived", WAIT, () -> client.events.size() == 3);
    assertEquals(List.of(0, 1, 2), client.sequences());
    assertEquals(accepted.requestId(), await(backend.cancelled.future()),
        "the cancel reached the backend, which frees the KV on both instances");
    eventually("a cancelled request counted as 499", WAIT, () -> metrics().contains(
        "duet_requests_total{endpoint=\"eventbus\",status=\"499\"} 1.0"));
    assertTrue(metrics().contains("duet_requests_in_flight 0.0"), metrics());

    Exception again = assertThrows(Exception.class, () -> await(client.cancel(accepted)));
    assertEquals(Failure.BAD_REQUEST, Failure.of(again), "an ended request is not known");
  }

  @Test
  void grantedCreditsResumeTheStream() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, "length", pieces(6));
    Client client = new Client();
    CompletionAccepted accepted = await(client.send(client.prompt("p", 2)));
    await(backend.paused.future());
    eventually("the 2 credited events arrived", WAIT, () -> client.events.size() == 2);

    client.grant(accepted, 3);
    eventually("3 more events", WAIT, () -> client.events.size() == 5);
    client.grant(accepted, 1);
    DecodeEvent last = await(client.last.future());
    assertEquals("length", last.finishReason());
    assertEquals(List.of(0, 1, 2, 3, 4, 5), client.sequences());
    assertEquals("x".repeat(6), client.text());
    assertEquals(0, backend.cancels.get());
  }

  @Test
  void aClientThatStaysOutOfCreditIsCancelledAfterTheStallTimeout() throws Exception {
    await(vertx.undeploy(proxy.deploymentID()));
    proxy = deploy(new ProxyOptions().setEventBusStallTimeoutMillis(200));
    backend.script = job -> StubBackend.tokens(job, 5, "length", pieces(10));
    Client client = new Client();
    CompletionAccepted accepted = await(client.send(client.prompt("p", 2)));

    assertEquals(accepted.requestId(), await(backend.cancelled.future()));
    eventually("the stalled request counted as 499", WAIT, () -> metrics().contains(
        "duet_requests_total{endpoint=\"eventbus\",status=\"499\"} 1.0"));
    assertEquals(2, client.events.size());
  }

  @Test
  void aClientWhoseStreamAddressDisappearsIsCancelled() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, "length", pieces(200)).withDelay(10);
    Client client = new Client();
    CompletionAccepted accepted = await(client.send(client.prompt("p", 1000)));
    eventually("a first event", WAIT, () -> !client.events.isEmpty());
    await(client.consumer.unregister());

    assertEquals(accepted.requestId(), await(backend.cancelled.future()));
    eventually("the request counted as abandoned", WAIT, () -> metrics().contains(
        "duet_requests_total{endpoint=\"eventbus\",status=\"499\"} 1.0"));
    assertTrue(metrics().contains("duet_requests_in_flight 0.0"), metrics());
  }

  // ---- helpers --------------------------------------------------------------------------------

  /** The job of the {@code index}th request; the proxy starts it right after its reply. */
  private CompletionJob job(int index) {
    eventually("job " + index + " started", WAIT, () -> backend.jobs.size() > index);
    return backend.jobs.get(index);
  }

  private static String[] pieces(int count) {
    return IntStream.range(0, count).mapToObj(i -> "x").toArray(String[]::new);
  }

  private String metrics() {
    return proxy.registry().scrape();
  }

  private static <T> T await(Future<T> future) throws Exception {
    try {
      return future.toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
    } catch (java.util.concurrent.ExecutionException e) {
      throw e.getCause() instanceof Exception cause ? cause : e;
    }
  }
}
