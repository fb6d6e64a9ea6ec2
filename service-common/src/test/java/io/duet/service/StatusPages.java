package io.duet.service;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the HTTP pages of a cluster's processes for the integration tests (published with
 * service-common's test-jar): a page, a Prometheus metric, the models a proxy serves.
 */
public final class StatusPages {

  /** Counters and gauges of the prefill and decode instances (a decode rank's on its own page). */
  public static final Pattern PREFILL_PROMPTS = metricPattern("duet_prefill_prompts_total", "");
  public static final Pattern KV_BLOCKS_USED = metricPattern("duet_kv_blocks_used", "");
  public static final Pattern KV_LEASES = metricPattern("duet_kv_leases", "");
  public static final Pattern DECODE_RUNNING = metricPattern("duet_decode_running", "");
  public static final Pattern DECODE_TOKENS = metricPattern("duet_decode_tokens_total", "");

  private final HttpClient http;

  public StatusPages(HttpClient http) {
    this.http = http;
  }

  /** Over a client of its own: HTTP/1.1, connections given 5 s. */
  public StatusPages() {
    this(HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build());
  }

  public static URI uri(int port, String path) {
    return URI.create("http://127.0.0.1:" + port + path);
  }

  /** The value of a metric whose labels match {@code labelMatch} (a regex, "" for any). */
  public static Pattern metricPattern(String name, String labelMatch) {
    return Pattern.compile("(?m)^" + Pattern.quote(name) + "\\{[^}]*" + labelMatch
        + "[^}]*\\}\\s+(\\S+)$");
  }

  /** The first value of {@code pattern} in the metrics of the child on {@code port}. */
  public double metric(int port, Pattern pattern) {
    String text = get(port, "/metrics");
    Matcher m = pattern.matcher(text);
    if (!m.find()) {
      throw new AssertionError("no " + pattern + " in the metrics of port " + port + ":\n" + text);
    }
    return Double.parseDouble(m.group(1));
  }

  /** {@code GET path} on {@code port}, or empty while nothing listens there. */
  public Optional<HttpResponse<String>> tryGet(int port, String path) {
    try {
      return Optional.of(http.send(HttpRequest.newBuilder(uri(port, path))
          .timeout(Duration.ofSeconds(2)).GET().build(), HttpResponse.BodyHandlers.ofString()));
    } catch (IOException notListeningYet) {
      return Optional.empty();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  /** The models a proxy lists in {@code GET /v1/models}; empty while it does not answer 200. */
  public Optional<Set<String>> servedModels(int proxyPort) {
    return tryGet(proxyPort, "/v1/models").filter(answer -> answer.statusCode() == 200)
        .map(answer -> {
          Set<String> models = new TreeSet<>();
          JsonArray data = new JsonObject(answer.body()).getJsonArray("data");
          for (int i = 0; i < data.size(); i++) {
            models.add(data.getJsonObject(i).getString("id"));
          }
          return models;
        });
  }

  /** {@code GET path} on {@code port}; it must answer 200. */
  public String get(int port, String path) {
    try {
      HttpResponse<String> response = http.send(HttpRequest.newBuilder(uri(port, path))
          .timeout(Duration.ofSeconds(10)).GET().build(), HttpResponse.BodyHandlers.ofString());
      assertEquals(200, response.statusCode(), () -> "GET " + path + " on " + port);
      return response.body();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
