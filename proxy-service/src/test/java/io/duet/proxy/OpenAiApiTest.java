package io.duet.proxy;

import static io.duet.service.ServiceTests.eventually;
import static org.junit.jupiter.api.Assertions.assertAll;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.InvalidConfigException;
import io.duet.cluster.Settings;
import io.duet.contract.Failure;
import io.duet.contract.SamplingSpec;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.client.HttpResponse;
import io.vertx.ext.web.client.WebClient;
import io.vertx.junit5.Timeout;
import io.vertx.junit5.VertxExtension;
import io.vertx.junit5.VertxTestContext;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The HTTP layer against a scripted backend: a real server on an ephemeral port, driven by
 * Vert.x's WebClient and HttpClient.
 */
@ExtendWith(VertxExtension.class)
@Timeout(value = 20, timeUnit = TimeUnit.SECONDS)
class OpenAiApiTest {

  private static final String HOST = "127.0.0.1";
  private static final String MODEL = StubBackend.MODEL;
  private static final Duration WAIT = Duration.ofSeconds(10);

  private Vertx vertx;
  private StubBackend backend;
  private ProxyVerticle proxy;
  private WebClient client;

  @BeforeEach
  void setUp(Vertx vertx) throws Exception {
    this.vertx = vertx;
    backend = new StubBackend(vertx);
    proxy = deploy(new ProxyOptions());
    client = WebClient.create(vertx);
  }

  private ProxyVerticle deploy(ProxyOptions options) throws Exception {
    // The stub is safe to share between the event loops of the servers.
    ProxyVerticle verticle = new ProxyVerticle(() -> backend, options.setHost(HOST).setPort(0));
    await(vertx.deployVerticle(verticle));
    return verticle;
  }

  // ---- non-streaming --------------------------------------------------------------------------

  @Test
  void completion() throws Exception {
    HttpResponse<Buffer> response = post("/v1/completions",
        new JsonObject().put("model", MODEL).put("prompt", "Say hello"));
    assertEquals(200, response.statusCode(), response.bodyAsString());
    assertTrue(response.getHeader("Content-Type").startsWith("application/json"));
    JsonObject body = response.bodyAsJsonObject();
    String id = body.getString("id");
    assertTrue(id.startsWith("cmpl-"), id);
    assertEquals(id, response.getHeader("X-Request-Id"));
    assertEquals("text_completion", body.getString("object"));
    assertTrue(body.getLong("created") > 1_600_000_000L);
    assertEquals(MODEL, body.getString("model"));
    JsonObject choice = body.getJsonArray("choices").getJsonObject(0);
    assertEquals(new JsonObject().put("index", 0).put("text", "Hello world").put("logprobs", null)
        .put("finish_reason", "stop"), choice);
    assertEquals(usage(5, 2), body.getJsonObject("usage"));

    CompletionJob job = backend.jobs.get(0);
    assertEquals(id, job.requestId());
    assertEquals("Say hello", job.prompt());
    assertEquals(MODEL, job.model());
    SamplingSpec sampling = job.sampling();
    assertEquals(16, sampling.maxTokens());
    assertEquals(1.0f, sampling.temperature());
    assertEquals(1.0f, sampling.topP());
    assertEquals(0, sampling.topK());
    assertEquals(List.of(), sampling.stop());
    assertFalse(sampling.ignoreEos());
  }

  @Test
  void promptAsArrayOfOneString() throws Exception {
    HttpResponse<Buffer> response = post("/v1/completions",
        new JsonObject().put("model", MODEL).put("prompt", new JsonArray().add("Once")));
    assertEquals(200, response.statusCode(), response.bodyAsString());
    assertEquals("Once", backend.jobs.get(0).prompt());
  }

  @Test
  void chatCompletion() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 12, "length", "Hi", " there");
    HttpResponse<Buffer> response = post("/v1/chat/completions", new JsonObject()
        .put("model", MODEL)
        .put("messages", new JsonArray()
            .add(new JsonObject().put("role", "system").put("content", "You are terse."))
            .add(new JsonObject().put("role", "user").put("content", new JsonArray()
                .add(new JsonObject().put("type", "text").put("text", "Hello")))))
        .put("max_completion_tokens", 2));
    assertEquals(200, response.statusCode(), response.bodyAsString());
    JsonObject body = response.bodyAsJsonObject();
    String id = body.getString("id");
    assertTrue(id.startsWith("chatcmpl-"), id);
    assertEquals(id, response.getHeader("X-Request-Id"));
    assertEquals("chat.completion", body.getString("object"));
    assertEquals(MODEL, body.getString("model"));
    assertEquals(new JsonObject().put("index", 0)
        .put("message", new JsonObject().put("role", "assistant").put("content", "Hi there")
            .put("refusal", null).put("annotations", new JsonArray()))
        .put("logprobs", null).put("finish_reason", "length"),
        body.getJsonArray("choices").getJsonObject(0));
    assertEquals(usage(12, 2), body.getJsonObject("usage"));
    CompletionJob job = backend.jobs.get(0);
    assertEquals("[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHello [/INST]", job.prompt());
    assertEquals(2, job.sampling().maxTokens());
  }

  @Test
  void chatDefaultsToTheChatTokenCap() throws Exception {
    post("/v1/chat/completions", chat("Hi"));
    assertEquals(ProxyOptions.DEFAULT_CHAT_MAX_TOKENS, backend.jobs.get(0).sampling().maxTokens());
    assertEquals("[INST] Hi [/INST]", backend.jobs.get(0).prompt());
  }

  @Test
  void plainChatTemplateFromOptions() throws Exception {
    ProxyVerticle plain = deploy(new ProxyOptions().setChatTemplate(ChatTemplate.PLAIN));
    HttpResponse<Buffer> response = await(client.post(plain.actualPort(), HOST,
        "/v1/chat/completions").sendJsonObject(chat("Hi")));
    assertEquals(200, response.statusCode());
    assertEquals("User: Hi\nAssistant:", backend.jobs.get(0).prompt());
  }

  @Test
  void chatIsRenderedWithTheModelsOwnTemplateUnlessOneIsConfigured() throws Exception {
    backend.chatTemplate = ChatTemplate.PLAIN;
    post("/v1/chat/completions", chat("Hi"));
    assertEquals("User: Hi\nAssistant:", backend.jobs.get(0).prompt());

    ProxyVerticle configured = deploy(new ProxyOptions().setChatTemplate(ChatTemplate.LLAMA2));
    await(client.post(configured.actualPort(), HOST, "/v1/chat/completions")
        .sendJsonObject(chat("Hi")));
    assertEquals("[INST] Hi [/INST]", backend.jobs.get(1).prompt());
  }

  @Test
  void echoPrependsThePrompt() throws Exception {
    HttpResponse<Buffer> response = post("/v1/completions",
        new JsonObject().put("model", MODEL).put("prompt", "Say:").put("echo", true));
    assertEquals("Say:Hello world", response.bodyAsJsonObject().getJsonArray("choices")
        .getJsonObject(0).getString("text"));

    List<JsonObject> chunks = dataChunks(post("/v1/completions", new JsonObject()
        .put("model", MODEL).put("prompt", "Say:").put("echo", true).put("stream", true)));
    assertEquals(List.of("Say:", "Hello", " world"), chunks.stream()
        .map(c -> c.getJsonArray("choices").getJsonObject(0).getString("text")).toList());
  }

  @Test
  void samplingParametersReachTheJob() throws Exception {
    post("/v1/completions", new JsonObject().put("model", MODEL).put("prompt", "x")
        .put("max_tokens", 7).put("temperature", 0.5).put("top_p", 0.9).put("top_k", 40)
        .put("seed", 42).put("stop", new JsonArray().add("\n").add("END"))
        .put("stop_token_ids", new JsonArray().add(13)).put("ignore_eos", true)
        .put("n", 1).put("best_of", 1).put("logprobs", null).put("presence_penalty", 0)
        .put("frequency_penalty", 0.0).put("user", "u1").put("unknown_field", "ignored"));
    assertEquals(new SamplingSpec(0.5f, 40, 0.9f, 42L, 7, List.of(13), List.of("\n", "END"),
        true, true, 0, 0f), backend.jobs.get(0).sampling());

    post("/v1/completions", new JsonObject().put("model", MODEL).put("prompt", "x")
        .put("stop", "###").put("top_k", -1).put("max_tokens", 3.0));
    post("/v1/completions", new JsonObject().put("model", MODEL).put("prompt", "x"));
    SamplingSpec second = backend.jobs.get(1).sampling();
    assertEquals(List.of("###"), second.stop());
    assertEquals(0, second.topK());
    assertEquals(3, second.maxTokens());
    assertNotEquals(second.seed(), backend.jobs.get(2).sampling().seed(),
        "an absent seed is drawn per request");
  }

  // ---- streaming ------------------------------------------------------------------------------

  @Test
  void streamWithContinuousUsage() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 4, "stop", "A", "B", "C");
    HttpResponse<Buffer> response = post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", "p").put("stream", true).put("stream_options", new JsonObject()
            .put("include_usage", true).put("continuous_usage_stats", true)));
    assertEquals(200, response.statusCode());
    assertTrue(response.getHeader("Content-Type").startsWith("text/event-stream"));
    List<String> events = sseEvents(response);
    assertEquals("[DONE]", events.get(events.size() - 1));
    List<JsonObject> chunks = dataChunks(response);
    assertEquals(4, chunks.size(), events.toString());
    String id = response.getHeader("X-Request-Id");
    for (int i = 0; i < 3; i++) {
      JsonObject chunk = chunks.get(i);
      assertEquals(id, chunk.getString("id"));
      assertEquals("text_completion", chunk.getString("object"));
      JsonObject choice = chunk.getJsonArray("choices").getJsonObject(0);
      assertEquals(List.of("A", "B", "C").get(i), choice.getString("text"));
      assertEquals(i == 2 ? "stop" : null, choice.getString("finish_reason"));
      assertTrue(choice.containsKey("finish_reason"));
      assertEquals(usage(4, i + 1), chunk.getJsonObject("usage"), "usage in every chunk");
    }
    JsonObject last = chunks.get(3);
    assertEquals(new JsonArray(), last.getJsonArray("choices"));
    assertEquals(usage(4, 3), last.getJsonObject("usage"));
    assertEquals(id, last.getString("id"));
  }

  @Test
  void streamWithIncludeUsageOnly() throws Exception {
    List<JsonObject> chunks = dataChunks(post("/v1/completions", new JsonObject()
        .put("model", MODEL).put("prompt", "p").put("stream", true)
        .put("stream_options", new JsonObject().put("include_usage", true))));
    assertEquals(3, chunks.size());
    for (JsonObject chunk : chunks.subList(0, 2)) {
      assertTrue(chunk.containsKey("usage"));
      assertNull(chunk.getValue("usage"));
    }
    assertEquals(usage(5, 2), chunks.get(2).getJsonObject("usage"));
  }

  @Test
  void streamWithoutUsage() throws Exception {
    HttpResponse<Buffer> response = post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", "p").put("stream", true));
    List<JsonObject> chunks = dataChunks(response);
    assertEquals(2, chunks.size());
    chunks.forEach(chunk -> assertFalse(chunk.containsKey("usage"), chunk.encode()));
    List<String> events = sseEvents(response);
    assertEquals("[DONE]", events.get(events.size() - 1));
  }

  @Test
  void chatStream() throws Exception {
    HttpResponse<Buffer> response = post("/v1/chat/completions", chat("Hi").put("stream", true));
    assertEquals(200, response.statusCode());
    List<JsonObject> chunks = dataChunks(response);
    assertEquals(4, chunks.size(), chunks.toString());
    List<JsonObject> deltas = new ArrayList<>();
    List<String> finishes = new ArrayList<>();
    for (JsonObject chunk : chunks) {
      assertEquals("chat.completion.chunk", chunk.getString("object"));
      assertTrue(chunk.getString("id").startsWith("chatcmpl-"));
      JsonObject choice = chunk.getJsonArray("choices").getJsonObject(0);
      deltas.add(choice.getJsonObject("delta"));
      finishes.add(choice.getString("finish_reason"));
    }
    assertEquals(List.of(new JsonObject().put("role", "assistant").put("content", ""),
        new JsonObject().put("content", "Hello"), new JsonObject().put("content", " world"),
        new JsonObject()), deltas);
    assertEquals(java.util.Arrays.asList(null, null, null, "stop"), finishes);
    List<String> events = sseEvents(response);
    assertEquals("[DONE]", events.get(events.size() - 1));
  }

  // ---- errors ---------------------------------------------------------------------------------

  /** One request that must be refused: body, HTTP status, the error's param, words of its text. */
  private record Refusal(String path, String body, int status, String param, String words) {
  }

  @Test
  void validationErrors() throws Exception {
    String c = "/v1/completions";
    String ch = "/v1/chat/completions";
    String ok = "\"model\":\"" + MODEL + "\",\"prompt\":\"hi\"";
    String okChat = "\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";
    List<Refusal> table = List.of(
        new Refusal(c, "{not json", 400, null, "Invalid JSON"),
        new Refusal(c, "[1,2]", 400, null, "Invalid JSON"),
        new Refusal(c, "", 400, null, "Invalid JSON"),
        new Refusal(c, "{\"prompt\":\"hi\"}", 400, "model", "model"),
        new Refusal(c, "{\"model\":3,\"prompt\":\"hi\"}", 400, "model", "string"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\"}", 400, "prompt", "prompt"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":[\"a\",3]}", 400, "prompt[1]",
            "a string or a non-empty array of token ids"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":[1,-2,3]}", 400, "prompt",
            "non-negative"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":[1,\"a\"]}", 400, "prompt",
            "integers"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":[[1,2],[]]}", 400, "prompt[1]",
            "non-empty"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":[[1,2.5]]}", 400, "prompt[0]",
            "integers"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":[[1],[2]],\"echo\":true}", 400,
            "echo", "token-id"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":" + manyPrompts(129) + "}", 400,
            "prompt", "at most 128"),
        new Refusal(c, "{" + ok + ",\"min_tokens\":-1}", 400, "min_tokens", "minimum"),
        new Refusal(c, "{" + ok + ",\"min_tokens\":20}", 400, "min_tokens",
            "less than or equal to max_tokens"),
        new Refusal(c, "{" + ok + ",\"min_p\":1.5}", 400, "min_p", "maximum"),
        new Refusal(c, "{" + ok + ",\"min_p\":\"x\"}", 400, "min_p", "number"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":{}}", 400, "prompt", "object"),
        new Refusal(c, "{" + ok + ",\"temperature\":\"hot\"}", 400, "temperature", "number"),
        new Refusal(c, "{" + ok + ",\"temperature\":2.5}", 400, "temperature", "maximum"),
        new Refusal(c, "{" + ok + ",\"temperature\":-1}", 400, "temperature", "minimum"),
        new Refusal(c, "{" + ok + ",\"top_p\":0}", 400, "top_p", "minimum"),
        new Refusal(c, "{" + ok + ",\"top_p\":1.5}", 400, "top_p", "maximum"),
        new Refusal(c, "{" + ok + ",\"top_k\":-2}", 400, "top_k", "minimum"),
        new Refusal(c, "{" + ok + ",\"top_k\":1.5}", 400, "top_k", "integer"),
        new Refusal(c, "{" + ok + ",\"max_tokens\":0}", 400, "max_tokens", "minimum"),
        new Refusal(c, "{" + ok + ",\"max_tokens\":\"10\"}", 400, "max_tokens", "integer"),
        new Refusal(c, "{" + ok + ",\"max_tokens\":1e12}", 400, "max_tokens", "maximum"),
        new Refusal(c, "{" + ok + ",\"seed\":\"x\"}", 400, "seed", "integer"),
        new Refusal(c, "{" + ok + ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop",
            "at most 4"),
        new Refusal(c, "{" + ok + ",\"stop\":7}", 400, "stop", "string"),
        new Refusal(c, "{" + ok + ",\"stop\":[\"\"]}", 400, "stop", "empty"),
        new Refusal(c, "{" + ok + ",\"stream\":\"yes\"}", 400, "stream", "boolean"),
        new Refusal(c, "{" + ok + ",\"stream_options\":{\"include_usage\":true}}", 400,
            "stream_options", "only allowed when 'stream' is enabled"),
        new Refusal(c, "{" + ok + ",\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
            400, "stream_options.include_usage", "boolean"),
        new Refusal(c, "{" + ok + ",\"echo\":\"yes\"}", 400, "echo", "boolean"),
        new Refusal(c, "{" + ok + ",\"n\":129}", 400, "n", "maximum"),
        new Refusal(c, "{" + ok + ",\"n\":0}", 400, "n", "minimum"),
        new Refusal(c, "{\"model\":\"" + MODEL + "\",\"prompt\":[\"a\",\"b\",\"c\"],\"n\":43}",
            400, "n", "at most 128 choices"),
        new Refusal(c, "{" + ok + ",\"best_of\":3}", 400, "best_of", "not supported"),
        new Refusal(c, "{" + ok + ",\"n\":2,\"best_of\":3}", 400, "best_of", "must equal n"),
        new Refusal(c, "{" + ok + ",\"logprobs\":2}", 400, "logprobs", "not supported"),
        new Refusal(c, "{" + ok + ",\"presence_penalty\":0.5}", 400, "presence_penalty",
            "not supported"),
        new Refusal(c, "{" + ok + ",\"frequency_penalty\":-1}", 400, "frequency_penalty",
            "not supported"),
        new Refusal(c, "{" + ok + ",\"logit_bias\":{\"50256\":-100}}", 400, "logit_bias",
            "not supported"),
        new Refusal(c, "{" + ok + ",\"suffix\":\"end\"}", 400, "suffix", "not supported"),
        new Refusal(c, "{" + ok + ",\"ignore_eos\":\"no\"}", 400, "ignore_eos", "boolean"),
        new Refusal(ch, "{\"model\":\"" + MODEL + "\"}", 400, "messages", "messages"),
        new Refusal(ch, "{\"model\":\"" + MODEL + "\",\"messages\":[]}", 400, "messages",
            "empty"),
        new Refusal(ch, "{\"model\":\"" + MODEL + "\",\"messages\":\"hi\"}", 400, "messages",
            "array"),
        new Refusal(ch, "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"user\","
            + "\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}", 400, "messages",
            "last message must be from the user"),
        new Refusal(ch, "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"tool\","
            + "\"content\":\"a\"}]}", 400, "messages[0].role", "Unsupported role"),
        new Refusal(ch, "{\"model\":\"" + MODEL + "\",\"messages\":[{\"content\":\"a\"}]}", 400,
            "messages[0].role", "role"),
        new Refusal(ch, "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"user\","
            + "\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}", 400,
            "messages[0].content[0].type", "only text"),
        new Refusal(ch, "{\"model\":\"" + MODEL + "\",\"messages\":[{\"role\":\"user\","
            + "\"content\":null}]}", 400, "messages[0].content", "null"),
        new Refusal(ch, "{" + okChat + ",\"max_completion_tokens\":0}", 400,
            "max_completion_tokens", "minimum"),
        new Refusal(ch, "{" + okChat + ",\"logprobs\":true}", 400, "logprobs", "not supported"),
        new Refusal(ch, "{" + okChat + ",\"tools\":[{\"type\":\"function\"}]}", 400, "tools",
            "not supported"),
        new Refusal(ch, "{" + okChat + ",\"response_format\":{\"type\":\"json_object\"}}", 400,
            "response_format", "not supported"),
        new Refusal(c, "{\"model\":\"nope\",\"prompt\":\"hi\"}", 404, null, "nope"),
        new Refusal(ch, "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}",
            404, null, "nope"));

    List<HttpResponse<Buffer>> responses = new ArrayList<>();
    for (Refusal refusal : table) {
      responses.add(await(client.post(proxy.actualPort(), HOST, refusal.path())
          .putHeader("Content-Type", "application/json")
          .sendBuffer(Buffer.buffer(refusal.body()))));
    }
    List<org.junit.jupiter.api.function.Executable> checks = new ArrayList<>();
    for (int i = 0; i < table.size(); i++) {
      Refusal refusal = table.get(i);
      HttpResponse<Buffer> response = responses.get(i);
      checks.add(() -> {
        String what = refusal.body() + " -> " + response.bodyAsString();
        assertEquals(refusal.status(), response.statusCode(), what);
        JsonObject error = response.bodyAsJsonObject().getJsonObject("error");
        assertEquals(java.util.Set.of("message", "type", "param", "code"), error.fieldNames(),
            what);
        assertEquals("invalid_request_error", error.getString("type"), what);
        assertEquals(refusal.param(), error.getString("param"), what);
        assertTrue(error.getString("message").contains(refusal.words()), what);
        assertEquals(refusal.status() == 404 ? "model_not_found" : null, error.getString("code"),
            what);
        assertTrue(response.getHeader("X-Request-Id").startsWith(
            refusal.path().equals(c) ? "cmpl-" : "chatcmpl-"), what);
      });
    }
    assertAll(checks);
    assertTrue(backend.jobs.isEmpty(), "no refused request reaches the backend");
  }

  @Test
  void bodyOverOneMebibyteIs413() throws Exception {
    String big = "{\"model\":\"" + MODEL + "\",\"prompt\":\"" + "a".repeat(1024 * 1024) + "\"}";
    HttpResponse<Buffer> response = await(client.post(proxy.actualPort(), HOST, "/v1/completions")
        .putHeader("Content-Type", "application/json").sendBuffer(Buffer.buffer(big)));
    assertEquals(413, response.statusCode());
    assertEquals("invalid_request_error",
        response.bodyAsJsonObject().getJsonObject("error").getString("type"));
  }

  @Test
  void unknownRouteIsJson404() throws Exception {
    HttpResponse<Buffer> response = await(client.get(proxy.actualPort(), HOST, "/v1/nothing")
        .send());
    assertEquals(404, response.statusCode());
    assertNotNull(response.bodyAsJsonObject().getJsonObject("error").getString("message"));
  }

  @Test
  void failureBeforeFirstTokenIsAnHttpError() throws Exception {
    backend.script = job -> new StubBackend.Script(List.of(), 0, null, false)
        .thenFail(Failure.UNAVAILABLE, "no decode instance serves stub-model");
    for (boolean stream : new boolean[] {false, true}) {
      HttpResponse<Buffer> response = post("/v1/completions", new JsonObject()
          .put("model", MODEL).put("prompt", "p").put("stream", stream));
      assertEquals(503, response.statusCode(), response.bodyAsString());
      assertTrue(response.getHeader("Content-Type").startsWith("application/json"));
      assertEquals(new JsonObject().put("error", new JsonObject()
          .put("message", "no decode instance serves stub-model")
          .put("type", "service_unavailable").put("param", null).put("code", null)),
          response.bodyAsJsonObject());
    }

    backend.script = job -> new StubBackend.Script(List.of(StubBackend.failureEvent(job, 0, 0,
        Failure.KV_TRANSFER, "KV pull from p0 failed")), 0, null, false);
    HttpResponse<Buffer> response = post("/v1/chat/completions", chat("Hi").put("stream", true));
    assertEquals(502, response.statusCode(), response.bodyAsString());
    assertEquals("kv_transfer_failed", response.bodyAsJsonObject().getJsonObject("error")
        .getString("type"));

    backend.script = job -> new StubBackend.Script(List.of(), 0, null, false);
    response = post("/v1/completions", new JsonObject().put("model", MODEL).put("prompt", "p"));
    assertEquals(500, response.statusCode(), "a stream that ends without its last event");
    assertEquals("internal_error", response.bodyAsJsonObject().getJsonObject("error")
        .getString("type"));
  }

  @Test
  void failureMidStreamIsAnErrorEventThenDone() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, null, "a", "b")
        .thenFail(Failure.INTERNAL, "decode rank 3 died");
    HttpResponse<Buffer> response = post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", "p").put("stream", true));
    assertEquals(200, response.statusCode());
    List<String> events = sseEvents(response);
    assertEquals(4, events.size(), events.toString());
    assertEquals("a", new JsonObject(events.get(0)).getJsonArray("choices").getJsonObject(0)
        .getString("text"));
    assertEquals(new JsonObject().put("error", new JsonObject()
        .put("message", "decode rank 3 died").put("type", "internal_error")
        .put("param", null).put("code", null)), new JsonObject(events.get(2)));
    assertEquals("[DONE]", events.get(3));

    backend.script = job -> new StubBackend.Script(List.of(
        StubBackend.tokens(job, 5, null, "x").events().get(0),
        StubBackend.failureEvent(job, 1, 1, Failure.TIMEOUT, "decode timed out")), 0, null, false);
    events = sseEvents(post("/v1/chat/completions", chat("Hi").put("stream", true)));
    assertEquals("timeout", new JsonObject(events.get(events.size() - 2))
        .getJsonObject("error").getString("type"));
    assertEquals("[DONE]", events.get(events.size() - 1));

    backend.script = job -> StubBackend.tokens(job, 5, null, "a")
        .thenFail(Failure.KV_TRANSFER, "lost");
    response = post("/v1/completions", new JsonObject().put("model", MODEL).put("prompt", "p"));
    assertEquals(502, response.statusCode(), "a non-streamed answer fails as a whole");
  }

  @Test
  void clientDisconnectMidStreamCancelsTheJob() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, null, "first").thenHang();
    HttpClient http = vertx.createHttpClient();
    Future<HttpClientResponse> streaming = http.request(HttpMethod.POST, proxy.actualPort(), HOST,
            "/v1/completions")
        .compose(request -> request.putHeader("Content-Type", "application/json")
            .send(new JsonObject().put("model", MODEL).put("prompt", "p").put("stream", true)
                .encode()))
        .onSuccess(response -> response.handler(chunk -> response.request().connection().close()));
    assertEquals(200, await(streaming).statusCode());

    await(backend.cancelled.future());
    assertEquals(1, backend.cancels.get());
    // A request is counted when its response ends, which Vert.x reports after the fact.
    eventually("the abandoned request counted as 499", WAIT, () -> metrics().contains(
        "duet_requests_total{endpoint=\"/v1/completions\",status=\"499\"} 1.0"));
    String metrics = await(client.get(proxy.actualPort(), HOST, "/metrics").send())
        .bodyAsString();
    assertTrue(metrics.contains(
        "duet_requests_total{endpoint=\"/v1/completions\",status=\"499\"} 1.0"), metrics);
  }

  @Test
  void clientDisconnectBeforeAnswerCancelsTheJob(VertxTestContext test) {
    backend.script = job -> StubBackend.tokens(job, 5, null, "first").thenHang();
    HttpClient http = vertx.createHttpClient();
    http.request(HttpMethod.POST, proxy.actualPort(), HOST, "/v1/completions")
        .compose(request -> request.putHeader("Content-Type", "application/json")
            .send(new JsonObject().put("model", MODEL).put("prompt", "p").encode()))
        .onComplete(test.failing(e -> { }));
    // Once the job runs, the client goes away.
    backend.started.future().onComplete(test.succeeding(job -> http.close()));
    backend.cancelled.future().onComplete(test.succeedingThenComplete());
  }

  @Test
  void slowClientPausesTheStream(VertxTestContext test) {
    String piece = "x".repeat(32 * 1024);
    int count = 400;
    backend.script = job -> {
      String[] pieces = new String[count];
      java.util.Arrays.fill(pieces, piece);
      return StubBackend.tokens(job, 5, "length", pieces);
    };
    HttpClient http = vertx.createHttpClient();
    http.request(HttpMethod.POST, proxy.actualPort(), HOST, "/v1/completions")
        .compose(request -> request.putHeader("Content-Type", "application/json")
            .send(new JsonObject().put("model", MODEL).put("prompt", "p").put("stream", true)
                .encode()))
        .onComplete(test.succeeding(response -> {
          Buffer body = Buffer.buffer();
          response.handler(body::appendBuffer);
          response.pause();
          backend.paused.future().onComplete(test.succeeding(paused -> response.resume()));
          response.endHandler(end -> test.verify(() -> {
            String text = body.toString();
            assertTrue(text.endsWith("data: [DONE]\n\n"));
            assertEquals(count, text.split("\n\n").length - 1);
            assertTrue(backend.resumes.get() > 0, "the stream resumed after the drain");
            test.completeNow();
          }));
        }));
  }

  @Test
  void streamsSpreadOverTheEventLoopsAndAllCountInTheMetrics() throws Exception {
    ProxyVerticle twoLoops = deploy(new ProxyOptions().setInstances(2));
    backend.script = job -> StubBackend.tokens(job, 5, null, "first").thenHang();
    HttpClient http = vertx.createHttpClient();
    List<Future<HttpClientResponse>> streams = new ArrayList<>();
    for (int i = 0; i < 4; i++) {
      streams.add(http.request(HttpMethod.POST, twoLoops.actualPort(), HOST, "/v1/completions")
          .compose(request -> request.putHeader("Content-Type", "application/json")
              .send(new JsonObject().put("model", MODEL).put("prompt", "p").put("stream", true)
                  .encode())));
    }
    for (Future<HttpClientResponse> stream : streams) {
      HttpClientResponse response = await(stream);
      assertEquals(200, response.statusCode());
      // The streams hang until this test's Vert.x closes their connections.
      response.exceptionHandler(closed -> { });
    }
    // Four connections, handed to the two servers in turn.
    assertEquals(2, backend.threads.size(), backend.threads.toString());
    String metrics = await(client.get(twoLoops.actualPort(), HOST, "/metrics").send())
        .bodyAsString();
    assertTrue(metrics.contains("duet_requests_in_flight 4.0"), metrics);
  }

  // ---- models, health, metrics, auth ----------------------------------------------------------

  @Test
  void modelsAndHealth() throws Exception {
    HttpResponse<Buffer> models = await(client.get(proxy.actualPort(), HOST, "/v1/models").send());
    assertEquals(200, models.statusCode());
    JsonObject list = models.bodyAsJsonObject();
    assertEquals("list", list.getString("object"));
    JsonObject model = list.getJsonArray("data").getJsonObject(0);
    assertEquals(MODEL, model.getString("id"));
    assertEquals("model", model.getString("object"));
    assertNotNull(model.getLong("created"));
    assertNotNull(model.getString("owned_by"));

    assertEquals(200, await(client.get(proxy.actualPort(), HOST, "/v1/models/" + MODEL).send())
        .statusCode());
    HttpResponse<Buffer> missing = await(client.get(proxy.actualPort(), HOST, "/v1/models/x/y")
        .send());
    assertEquals(404, missing.statusCode());
    assertEquals("model_not_found", missing.bodyAsJsonObject().getJsonObject("error")
        .getString("code"));

    HttpResponse<Buffer> health = await(client.get(proxy.actualPort(), HOST, "/health").send());
    assertEquals(200, health.statusCode());
    assertEquals(new JsonObject().put("status", "ok").put("models", new JsonObject()
        .put(MODEL, "duet")), health.bodyAsJsonObject());

    backend.models = List.of();
    health = await(client.get(proxy.actualPort(), HOST, "/health").send());
    assertEquals(503, health.statusCode());
    assertNotNull(health.bodyAsJsonObject().getString("reason"));
    assertEquals(new JsonArray(), await(client.get(proxy.actualPort(), HOST, "/v1/models")
        .send()).bodyAsJsonObject().getJsonArray("data"));
  }

  @Test
  void metricsAfterARequest() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, "stop", "a", "b", "c").withDelay(5);
    post("/v1/completions", new JsonObject().put("model", MODEL).put("prompt", "p"));
    post("/v1/completions", new JsonObject().put("model", "nope").put("prompt", "p"));
    // A request is counted when its response ends, which Vert.x reports after the fact.
    eventually("both requests counted", WAIT, () -> metrics().contains(
        "duet_requests_total{endpoint=\"/v1/completions\",status=\"404\"} 1.0")
        && metrics().contains(
        "duet_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1.0"));
    HttpResponse<Buffer> response = await(client.get(proxy.actualPort(), HOST, "/metrics")
        .send());
    assertEquals(200, response.statusCode());
    assertTrue(response.getHeader("Content-Type").startsWith("text/plain"));
    String text = response.bodyAsString();
    assertAll(
        () -> assertTrue(text.contains(
            "duet_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1.0"), text),
        () -> assertTrue(text.contains(
            "duet_requests_total{endpoint=\"/v1/completions\",status=\"404\"} 1.0"), text),
        () -> assertTrue(text.contains("duet_ttft_seconds_count 1"), text),
        () -> assertTrue(text.contains("duet_tpot_seconds_count 1"), text),
        () -> assertTrue(text.contains("duet_e2e_seconds_count 1"), text),
        () -> assertTrue(text.contains("duet_ttft_seconds_bucket{le="), text),
        () -> assertTrue(text.contains("duet_requests_in_flight 0.0"), text));
  }

  @Test
  void apiKeyIsRequiredOnV1() throws Exception {
    ProxyVerticle secured = deploy(new ProxyOptions().setApiKey("sk-duet-test"));
    int port = secured.actualPort();
    JsonObject body = new JsonObject().put("model", MODEL).put("prompt", "p");

    HttpResponse<Buffer> none = await(client.post(port, HOST, "/v1/completions")
        .sendJsonObject(body));
    assertEquals(401, none.statusCode());
    JsonObject error = none.bodyAsJsonObject().getJsonObject("error");
    assertEquals("invalid_request_error", error.getString("type"));
    assertTrue(error.containsKey("param") && error.containsKey("code"));

    HttpResponse<Buffer> wrong = await(client.post(port, HOST, "/v1/completions")
        .bearerTokenAuthentication("sk-wrong").sendJsonObject(body));
    assertEquals(401, wrong.statusCode());
    assertEquals("invalid_api_key", wrong.bodyAsJsonObject().getJsonObject("error")
        .getString("code"));
    assertEquals(401, await(client.get(port, HOST, "/v1/models").send()).statusCode());

    HttpResponse<Buffer> right = await(client.post(port, HOST, "/v1/completions")
        .bearerTokenAuthentication("sk-duet-test").sendJsonObject(body));
    assertEquals(200, right.statusCode(), right.bodyAsString());
    assertEquals(1, backend.jobs.size());

    assertEquals(200, await(client.get(port, HOST, "/health").send()).statusCode());
    assertEquals(200, await(client.get(port, HOST, "/metrics").send()).statusCode());
  }

  // ---- overload --------------------------------------------------------------------------------

  @Test
  void aBackendAtItsLimitsIsAnswered429WithRetryAfterBeforeAnyJobStarts() throws Exception {
    backend.overloaded = "every decode slot is taken and the queue is full";
    HttpResponse<Buffer> response = post("/v1/completions",
        new JsonObject().put("model", MODEL).put("prompt", "p"));
    assertEquals(429, response.statusCode(), response.bodyAsString());
    assertEquals("1", response.getHeader("Retry-After"));
    assertEquals(new JsonObject().put("error", new JsonObject()
        .put("message", "every decode slot is taken and the queue is full")
        .put("type", "overloaded").put("param", null).put("code", null)),
        response.bodyAsJsonObject());
    assertEquals(List.of(), backend.jobs);
  }

  @Test
  void aJobRefusedAsOverloadedBeforeItsFirstTokenIs429WithRetryAfter() throws Exception {
    backend.script = job -> new StubBackend.Script(List.of(), 0, null, false)
        .thenFail(Failure.OVERLOADED, "no decode slot came free in time");
    HttpResponse<Buffer> response = post("/v1/completions", new JsonObject()
        .put("model", MODEL).put("prompt", "p").put("stream", true));
    assertEquals(429, response.statusCode(), response.bodyAsString());
    assertEquals("1", response.getHeader("Retry-After"));
    assertEquals("overloaded", response.bodyAsJsonObject().getJsonObject("error")
        .getString("type"));
  }

  // ---- /admin/reload ---------------------------------------------------------------------------

  @Test
  void adminReloadAnswersWhatChangedOrWhyItWasRefusedBehindTheApiKey() throws Exception {
    DuetConfig started = DuetConfig.defaults().with(Settings.INSTANCE_ID, "proxy-1");
    AtomicReference<Future<DuetConfig>> next = new AtomicReference<>();
    List<DuetConfig> applied = new CopyOnWriteArrayList<>();
    ConfigReload reload = new ConfigReload(vertx, next::get, started, applied::add,
        new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    ProxyVerticle secured = new ProxyVerticle(() -> backend, new ProxyOptions().setHost(HOST)
        .setPort(0).setApiKey("sk-duet-test"),
        new PrometheusMeterRegistry(PrometheusConfig.DEFAULT), reload);
    await(vertx.deployVerticle(secured));
    int port = secured.actualPort();

    next.set(Future.succeededFuture(DuetConfig.defaults()
        .with(Settings.PROXY_DECODE_RANK_CAP, 3)));
    assertEquals(401, await(client.post(port, HOST, "/admin/reload").send()).statusCode());
    assertEquals(List.of(), applied);

    HttpResponse<Buffer> ok = await(client.post(port, HOST, "/admin/reload")
        .bearerTokenAuthentication("sk-duet-test").send());
    assertEquals(200, ok.statusCode(), ok.bodyAsString());
    assertEquals(new JsonObject().put("status", "applied").put("changes", new JsonArray()
        .add(new JsonObject().put("key", "proxy.decode-rank-cap").put("old", "25")
            .put("new", "3"))).put("restartRequired", new JsonArray()), ok.bodyAsJsonObject());
    assertEquals(3, applied.get(0).get(Settings.PROXY_DECODE_RANK_CAP));

    next.set(Future.failedFuture(new InvalidConfigException(List.of(
        new InvalidConfigException.Problem("proxy.queue-size", "an integer >= 0", "'-1'",
            "file: /etc/duet.yaml")))));
    HttpResponse<Buffer> refused = await(client.post(port, HOST, "/admin/reload")
        .bearerTokenAuthentication("sk-duet-test").send());
    assertEquals(400, refused.statusCode(), refused.bodyAsString());
    assertEquals(new JsonObject().put("status", "refused").put("errors", new JsonArray()
        .add("proxy.queue-size: expected an integer >= 0, found '-1' (file: /etc/duet.yaml)")),
        refused.bodyAsJsonObject());
    assertEquals(1, applied.size());
  }

  @Test
  void aProxyWithoutAReloadHasNoAdminEndpoint() throws Exception {
    assertEquals(404, await(client.post(proxy.actualPort(), HOST, "/admin/reload").send())
        .statusCode());
  }

  private static String manyPrompts(int count) {
    JsonArray prompts = new JsonArray();
    for (int i = 0; i < count; i++) {
      prompts.add("p" + i);
    }
    return prompts.encode();
  }

  // ---- batched and token-id prompts -----------------------------------------------------------

  @Test
  void batchedPromptsAreOneChoiceEachInOrderWithTheUsageSummed() throws Exception {
    backend.script = job -> StubBackend.tokens(job, job.prompt().length(), "length",
        job.prompt().toUpperCase(), "!");
    HttpResponse<Buffer> response = post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", new JsonArray().add("ab").add("cdef").add("g")).put("max_tokens", 2));
    assertEquals(200, response.statusCode(), response.bodyAsString());
    JsonObject body = response.bodyAsJsonObject();
    JsonArray choices = body.getJsonArray("choices");
    assertEquals(3, choices.size());
    for (int i = 0; i < 3; i++) {
      assertEquals(i, choices.getJsonObject(i).getInteger("index"));
    }
    assertEquals(List.of("AB!", "CDEF!", "G!"), choices.stream()
        .map(c -> ((JsonObject) c).getString("text")).toList());
    assertEquals(usage(2 + 4 + 1, 6), body.getJsonObject("usage"));
    String id = body.getString("id");
    assertEquals(List.of(id + "-0", id + "-1", id + "-2"),
        backend.jobs.stream().map(CompletionJob::requestId).sorted().toList());
  }

  @Test
  void batchedPromptsStreamInterleavedChunksNamingTheirIndex() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 3, "stop", job.prompt() + "1",
        job.prompt() + "2").withDelay(5);
    HttpResponse<Buffer> response = post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", new JsonArray().add("a").add("b")).put("stream", true)
        .put("stream_options", new JsonObject().put("include_usage", true)));
    assertEquals(200, response.statusCode(), response.bodyAsString());
    List<JsonObject> chunks = dataChunks(response);
    StringBuilder[] texts = {new StringBuilder(), new StringBuilder()};
    int finishes = 0;
    for (JsonObject chunk : chunks.subList(0, chunks.size() - 1)) {
      assertEquals("fp_duet", chunk.getString("system_fingerprint"));
      JsonObject choice = chunk.getJsonArray("choices").getJsonObject(0);
      texts[choice.getInteger("index")].append(choice.getString("text"));
      finishes += choice.getString("finish_reason") != null ? 1 : 0;
    }
    assertEquals("a1a2", texts[0].toString());
    assertEquals("b1b2", texts[1].toString());
    assertEquals(2, finishes, "one finish per choice");
    assertEquals(usage(6, 4), chunks.get(chunks.size() - 1).getJsonObject("usage"));
  }

  @Test
  void nChoicesPerPromptInOpenAisOrderEachWithItsOwnSeedAndThePromptCountedOnce()
      throws Exception {
    backend.script = job -> StubBackend.tokens(job, job.prompt().length(), "length",
        job.prompt() + job.sampling().seed());
    HttpResponse<Buffer> response = post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", new JsonArray().add("ab").add("c")).put("n", 2).put("best_of", 2)
        .put("seed", 40).put("max_tokens", 1));
    assertEquals(200, response.statusCode(), response.bodyAsString());
    JsonObject body = response.bodyAsJsonObject();
    JsonArray choices = body.getJsonArray("choices");
    assertEquals(List.of(0, 1, 2, 3), choices.stream()
        .map(c -> ((JsonObject) c).getInteger("index")).toList());
    assertEquals(List.of("ab40", "ab41", "c40", "c41"), choices.stream()
        .map(c -> ((JsonObject) c).getString("text")).toList());
    assertEquals(usage(2 + 1, 4), body.getJsonObject("usage"), "each prompt counted once");
    String id = body.getString("id");
    assertEquals(List.of(id + "-0", id + "-1", id + "-2", id + "-3"),
        backend.jobs.stream().map(CompletionJob::requestId).sorted().toList());
  }

  @Test
  void aChatOfNChoicesAnswersEachAsAMessageAndStreamsEachWithItsRoleAndFinish()
      throws Exception {
    backend.script = job -> StubBackend.tokens(job, 3, "stop", "s" + job.sampling().seed())
        .withDelay(5);
    JsonObject chat = new JsonObject().put("model", MODEL).put("n", 3).put("seed", 7)
        .put("messages", new JsonArray().add(new JsonObject().put("role", "user")
            .put("content", "hi")));
    JsonObject whole = post("/v1/chat/completions", chat).bodyAsJsonObject();
    JsonArray choices = whole.getJsonArray("choices");
    assertEquals(3, choices.size(), whole.encode());
    for (int i = 0; i < 3; i++) {
      JsonObject choice = choices.getJsonObject(i);
      assertEquals(i, choice.getInteger("index"));
      assertEquals("s" + (7 + i), choice.getJsonObject("message").getString("content"));
      assertEquals("stop", choice.getString("finish_reason"));
    }
    assertEquals(3, whole.getJsonObject("usage").getInteger("prompt_tokens"),
        "the prompt counted once, not once per choice");

    List<JsonObject> chunks = dataChunks(post("/v1/chat/completions",
        chat.copy().put("stream", true)));
    int[] roles = new int[3];
    int[] finishes = new int[3];
    StringBuilder[] texts = {new StringBuilder(), new StringBuilder(), new StringBuilder()};
    for (JsonObject chunk : chunks) {
      JsonObject choice = chunk.getJsonArray("choices").getJsonObject(0);
      int index = choice.getInteger("index");
      JsonObject delta = choice.getJsonObject("delta");
      roles[index] += delta.containsKey("role") ? 1 : 0;
      finishes[index] += choice.getString("finish_reason") != null ? 1 : 0;
      texts[index].append(delta.getString("content", ""));
    }
    assertArrayEquals(new int[] {1, 1, 1}, roles, "one role chunk per choice");
    assertArrayEquals(new int[] {1, 1, 1}, finishes, "one finish per choice");
    assertEquals(List.of("s7", "s8", "s9"),
        Arrays.stream(texts).map(StringBuilder::toString).toList());
  }

  @Test
  void tokenIdPromptsReachTheJobsAsTokens() throws Exception {
    assertEquals(200, post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", new JsonArray().add(1).add(2).add(3))).statusCode());
    assertEquals(200, post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", new JsonArray().add(new JsonArray().add(4)).add(new JsonArray().add(5)
            .add(6)))).statusCode());
    // The jobs of one request start in the order of its prompts.
    assertEquals(List.of(List.of(1, 2, 3), List.of(4), List.of(5, 6)),
        backend.jobs.stream().map(CompletionJob::promptTokens).toList());
    backend.jobs.forEach(job -> assertNull(job.prompt()));
  }

  @Test
  void oneFailedPromptFailsTheRequestAndCancelsTheOthers() throws Exception {
    backend.script = job -> job.prompt().equals("bad")
        ? new StubBackend.Script(List.of(), 0, null, false).thenFail(Failure.CONTEXT_LENGTH,
            "This model's maximum context length is 128 tokens.")
        : StubBackend.tokens(job, 3, "stop", "x").thenHang();
    HttpResponse<Buffer> response = post("/v1/completions", new JsonObject().put("model", MODEL)
        .put("prompt", new JsonArray().add("good").add("bad")));
    assertEquals(400, response.statusCode(), response.bodyAsString());
    JsonObject error = response.bodyAsJsonObject().getJsonObject("error");
    assertEquals("context_length_exceeded", error.getString("code"));
    assertEquals(backend.jobs.get(0).requestId(), await(backend.cancelled.future()));
  }

  @Test
  void minTokensAndMinPReachTheJob() throws Exception {
    post("/v1/completions", new JsonObject().put("model", MODEL).put("prompt", "x")
        .put("min_tokens", 3).put("min_p", 0.25));
    SamplingSpec sampling = backend.jobs.get(0).sampling();
    assertEquals(3, sampling.minTokens());
    assertEquals(0.25f, sampling.minP());
    assertFalse(sampling.maxTokensAsked(), "the default max_tokens may be cut by the context");
  }

  @Test
  void theChatRoleChunkCountsNoCompletionTokens() throws Exception {
    List<JsonObject> chunks = dataChunks(post("/v1/chat/completions", chat("Hi")
        .put("stream", true).put("stream_options", new JsonObject().put("include_usage", true)
            .put("continuous_usage_stats", true))));
    assertEquals(usage(5, 0), chunks.get(0).getJsonObject("usage"), chunks.get(0).encode());
    assertEquals(usage(5, 1), chunks.get(1).getJsonObject("usage"), chunks.get(1).encode());
    chunks.forEach(chunk -> assertEquals("fp_duet", chunk.getString("system_fingerprint")));
  }

  // ---- error shapes at the edges --------------------------------------------------------------

  @Test
  void aMultipartBodyIs415InTheOpenAiShape() throws Exception {
    HttpResponse<Buffer> response = await(client.post(proxy.actualPort(), HOST, "/v1/completions")
        .putHeader("Content-Type", "multipart/form-data; boundary=xyz")
        .sendBuffer(Buffer.buffer("--xyz\r\nContent-Disposition: form-data; name=\"prompt\"\r\n"
            + "\r\nhi\r\n--xyz--\r\n")));
    assertEquals(415, response.statusCode(), response.bodyAsString());
    assertOpenAiError(response, "invalid_request_error");
    assertTrue(backend.jobs.isEmpty());
  }

  @Test
  void aFormTypedJsonBodyIsServed() throws Exception {
    HttpResponse<Buffer> response = await(client.post(proxy.actualPort(), HOST, "/v1/completions")
        .putHeader("Content-Type", "application/x-www-form-urlencoded")
        .sendBuffer(Buffer.buffer(new JsonObject().put("model", MODEL).put("prompt", "x")
            .encode())));
    assertEquals(200, response.statusCode(), response.bodyAsString());
  }

  @Test
  void anOverlongRequestLineIs414AndOverlargeHeadersAre431InTheOpenAiShape() throws Exception {
    HttpResponse<Buffer> line = await(client.get(proxy.actualPort(), HOST,
        "/v1/models/" + "x".repeat(10_000)).send());
    assertEquals(414, line.statusCode());
    assertOpenAiError(line, "invalid_request_error");
    HttpResponse<Buffer> headers = await(client.get(proxy.actualPort(), HOST, "/v1/models")
        .putHeader("X-Big", "y".repeat(10_000)).send());
    assertEquals(431, headers.statusCode());
    assertOpenAiError(headers, "invalid_request_error");
  }

  @Test
  void aModelTheBackendExpectsButCannotServeNowIs503WithRetryAfterNot404() throws Exception {
    backend.models = List.of();
    backend.expected = List.of(MODEL);
    HttpResponse<Buffer> response = post("/v1/completions",
        new JsonObject().put("model", MODEL).put("prompt", "x"));
    assertEquals(503, response.statusCode(), response.bodyAsString());
    assertOpenAiError(response, "service_unavailable");
    assertNotNull(response.getHeader("Retry-After"));
    assertEquals(404, post("/v1/completions", new JsonObject().put("model", "other")
        .put("prompt", "x")).statusCode(), "a model it never expected is still 404");
  }

  private static void assertOpenAiError(HttpResponse<Buffer> response, String type) {
    JsonObject error = response.bodyAsJsonObject().getJsonObject("error");
    assertEquals(java.util.Set.of("message", "type", "param", "code"), error.fieldNames());
    assertEquals(type, error.getString("type"));
    assertFalse(error.getString("message").isBlank());
  }

  // ---- helpers --------------------------------------------------------------------------------

  private HttpResponse<Buffer> post(String path, JsonObject body) throws Exception {
    return await(client.post(proxy.actualPort(), HOST, path).sendJsonObject(body));
  }

  private static JsonObject chat(String user) {
    return new JsonObject().put("model", MODEL).put("messages", new JsonArray()
        .add(new JsonObject().put("role", "user").put("content", user)));
  }

  private static JsonObject usage(int prompt, int completion) {
    return new JsonObject().put("prompt_tokens", prompt).put("completion_tokens", completion)
        .put("total_tokens", prompt + completion);
  }

  /** The payloads of a server-sent-event body, in order. */
  private static List<String> sseEvents(HttpResponse<Buffer> response) {
    List<String> events = new ArrayList<>();
    for (String event : response.bodyAsString().split("\n\n")) {
      if (!event.isEmpty()) {
        assertTrue(event.startsWith("data: "), event);
        events.add(event.substring("data: ".length()));
      }
    }
    return events;
  }

  /** The JSON chunks of a stream (without the final {@code [DONE]}). */
  private static List<JsonObject> dataChunks(HttpResponse<Buffer> response) {
    return sseEvents(response).stream().filter(e -> !e.equals("[DONE]")).map(JsonObject::new)
        .toList();
  }

  private String metrics() {
    return proxy.registry().scrape();
  }

  private static <T> T await(Future<T> future) throws Exception {
    return future.toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
  }
}
