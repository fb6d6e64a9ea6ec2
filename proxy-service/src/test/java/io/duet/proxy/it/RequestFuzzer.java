package io.duet.proxy.it;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Random;

/**
 * Random HTTP requests of the kinds a hostile or careless client sends to the API: JSON bodies
 * whose fields have random types and values (huge, negative, empty, nested, wrong), bodies with
 * bad UTF-8 or cut short, odd headers and content types, wrong methods and paths, and bytes that
 * are not HTTP at all. Every request asks the server to close the connection after its answer.
 */
final class RequestFuzzer {

  /**
   * One generated request.
   *
   * @param mayClose whether the server may close the connection without an answer (it is not
   *     a whole HTTP request it can parse), so the client ends its side once it is sent; every
   *     other request must be answered
   */
  record Fuzzed(String description, byte[] bytes, boolean mayClose) {
  }

  private static final List<String> FIELDS = List.of("model", "prompt", "messages", "max_tokens",
      "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "min_tokens", "n",
      "seed", "stop", "stop_token_ids", "stream", "stream_options", "echo", "logprobs",
      "ignore_eos", "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias",
      "response_format", "tools", "user", "suffix", "best_of");
  private static final List<String> PATHS = List.of("/v1/completions", "/v1/chat/completions");

  private final Random random;
  private final String model;

  RequestFuzzer(Random random, String model) {
    this.random = random;
    this.model = model;
  }

  Fuzzed next() {
    int kind = random.nextInt(100);
    if (kind < 55) {
      return jsonFields();
    } else if (kind < 62) {
      return badUtf8();
    } else if (kind < 72) {
      return truncated();
    } else if (kind < 84) {
      return oddHeaders();
    } else if (kind < 95) {
      return wrongMethodOrPath();
    }
    return notHttp();
  }

  /** A valid request of either endpoint, before mutation. */
  private JsonObject base(boolean chat) {
    JsonObject body = new JsonObject().put("model", model).put("max_tokens", 1 + random.nextInt(8));
    return chat ? body.put("messages", new JsonArray().add(new JsonObject().put("role", "user")
        .put("content", text(20)))) : body.put("prompt", text(20));
  }

  private Fuzzed jsonFields() {
    boolean chat = random.nextBoolean();
    JsonObject body = base(chat);
    int mutations = 1 + random.nextInt(4);
    for (int i = 0; i < mutations; i++) {
      String field = random.nextInt(10) == 0 ? text(8) : FIELDS.get(random.nextInt(FIELDS.size()));
      if (random.nextInt(6) == 0) {
        body.remove(field);
      } else {
        body.put(field, value(3));
      }
    }
    String path = PATHS.get(chat ? 1 : 0);
    return new Fuzzed("POST " + path + " " + abbreviate(body.encode()),
        RawHttp.postJson(path, body.encode()), false);
  }

  private Fuzzed badUtf8() {
    byte[] json = base(false).encode().getBytes(StandardCharsets.UTF_8);
    byte[] bad = {(byte) 0xC3, (byte) 0x28, (byte) 0xFF, (byte) 0xED, (byte) 0xA0, (byte) 0x80};
    int at = json.length - 2 - random.nextInt(4);
    byte[] body = new byte[json.length + bad.length];
    System.arraycopy(json, 0, body, 0, at);
    System.arraycopy(bad, 0, body, at, bad.length);
    System.arraycopy(json, at, body, at + bad.length, json.length - at);
    return new Fuzzed("POST /v1/completions with bad UTF-8 at " + at,
        RawHttp.request("POST", "/v1/completions", "Content-Type: application/json\r\n", body),
        false);
  }

  private Fuzzed truncated() {
    String json = base(random.nextBoolean()).encode();
    String cut = json.substring(0, random.nextInt(json.length()));
    if (random.nextBoolean()) {
      return new Fuzzed("POST a JSON body cut short: " + cut, RawHttp.postJson(
          "/v1/completions", cut), false);
    }
    // A Content-Length that promises more than is sent: the connection ends first.
    byte[] head = ("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + "Content-Type: application/json\r\nContent-Length: " + (json.length() + 100)
        + "\r\n\r\n" + cut).getBytes(StandardCharsets.UTF_8);
    return new Fuzzed("POST with a Content-Length past the body", head, true);
  }

  private Fuzzed oddHeaders() {
    byte[] body = base(false).encode().getBytes(StandardCharsets.UTF_8);
    String json = "Content-Type: application/json\r\n";
    return switch (random.nextInt(8)) {
      case 0 -> new Fuzzed("multipart content type", RawHttp.request("POST", "/v1/completions",
          "Content-Type: multipart/form-data; boundary=x\r\n", body), false);
      case 1 -> new Fuzzed("text/plain content type", RawHttp.request("POST", "/v1/completions",
          "Content-Type: text/plain\r\n", body), false);
      case 2 -> new Fuzzed("no content type", RawHttp.request("POST", "/v1/completions", "",
          body), false);
      case 3 -> new Fuzzed("a header of 10 000 bytes", RawHttp.request("POST", "/v1/completions",
          json + "X-Big: " + "y".repeat(10_000) + "\r\n", body), false);
      case 4 -> new Fuzzed("300 headers", RawHttp.request("POST", "/v1/completions",
          json + "X-Many: z\r\n".repeat(300), body), false);
      case 5 -> new Fuzzed("a header of raw high bytes", RawHttp.request("POST",
          "/v1/completions", json + "X-Bytes: \u00ff\u00fe\u0080\r\n", body), false);
      case 6 -> new Fuzzed("a bearer token nobody asked for", RawHttp.request("POST",
          "/v1/completions", json + "Authorization: Bearer " + text(30) + "\r\n", body), false);
      default -> new Fuzzed("Expect: 100-continue", RawHttp.request("POST", "/v1/completions",
          json + "Expect: 100-continue\r\n", body), false);
    };
  }

  private Fuzzed wrongMethodOrPath() {
    List<String> methods = List.of("GET", "PUT", "DELETE", "PATCH", "OPTIONS", "POST");
    List<String> paths = List.of("/v1/completions", "/v1/chat/completions", "/v1/models",
        "/v1/nothing", "/v1/models/%00", "//v1/completions", "/v1/../admin/reload",
        "/v1/completions?stream=true", "/v1/models/" + "m".repeat(9_000), "/", "/health",
        "/v1/embeddings", "/v1/chat/completions/x");
    String method = methods.get(random.nextInt(methods.size()));
    String path = paths.get(random.nextInt(paths.size()));
    byte[] body = method.equals("GET") || method.equals("OPTIONS") ? null
        : base(false).encode().getBytes(StandardCharsets.UTF_8);
    return new Fuzzed(method + " " + abbreviate(path), RawHttp.request(method, path,
        "Content-Type: application/json\r\n", body), false);
  }

  private Fuzzed notHttp() {
    List<String> lines = List.of("GET\r\n\r\n", "HELLO WORLD\r\n\r\n",
        "POST /v1/completions HTTP/9.9\r\n\r\n", "GET /v1/models\r\n\r\n",
        "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n");
    if (random.nextBoolean()) {
      String line = lines.get(random.nextInt(lines.size()));
      return new Fuzzed("not HTTP: " + line.strip(), line.getBytes(StandardCharsets.ISO_8859_1),
          true);
    }
    byte[] noise = new byte[1 + random.nextInt(300)];
    random.nextBytes(noise);
    return new Fuzzed(noise.length + " random bytes", noise, true);
  }

  /** A random JSON value, nested up to {@code depth}. */
  private Object value(int depth) {
    return switch (random.nextInt(depth > 0 ? 12 : 10)) {
      case 0 -> null;
      case 1 -> random.nextBoolean();
      case 2 -> random.nextInt(2000) - 1000;
      case 3 -> List.of(Long.MAX_VALUE, Long.MIN_VALUE, 0L, -1L, 1L << 40).get(random.nextInt(5));
      case 4 -> List.of(1e308, -1e308, 0.5, -0.0, 3.0, 1e-300).get(random.nextInt(6));
      case 5 -> new java.math.BigInteger(100, random);
      case 6 -> "";
      case 7 -> text(1 + random.nextInt(random.nextInt(10) == 0 ? 3000 : 30));
      case 8 -> tokenIds();
      case 9 -> new JsonArray().add(text(5)).add(text(5));
      case 10 -> new JsonArray().add(value(depth - 1)).add(value(depth - 1));
      default -> new JsonObject().put(text(4), value(depth - 1)).put("type", value(depth - 1));
    };
  }

  private JsonArray tokenIds() {
    JsonArray ids = new JsonArray();
    for (int i = 0, n = 1 + random.nextInt(20); i < n; i++) {
      ids.add(random.nextInt(10) == 0 ? random.nextInt(100_000) - 10 : random.nextInt(512));
    }
    return random.nextInt(4) == 0 ? new JsonArray().add(ids).add(ids.copy()) : ids;
  }

  /** Random text: letters, spaces, punctuation, accents, CJK, emoji, controls, surrogates. */
  private String text(int length) {
    String alphabet = "abcdefghij klmnop QRST.,!?\"\\/<>{}[]éßñ中文😀\n\t\u0000\u2028";
    StringBuilder text = new StringBuilder();
    for (int i = 0; i < length; i++) {
      text.append(alphabet.charAt(random.nextInt(alphabet.length())));
    }
    return text.toString();
  }

  private static String abbreviate(String text) {
    return text.length() <= 200 ? text : text.substring(0, 200) + "...";
  }
}
