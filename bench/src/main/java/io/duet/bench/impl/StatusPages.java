package io.duet.bench.impl;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;

/**
 * Blocking reads of a running instance's HTTP pages, for commands that poll a live topology:
 * {@code /health}, Prometheus {@code /metrics}, {@code POST /admin/reload}.
 */
public final class StatusPages {

  private static final Duration TIMEOUT = Duration.ofSeconds(10);

  /** HTTP/1.1 as the status pages speak it, without the client's attempt to upgrade to h2c. */
  private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
      .connectTimeout(TIMEOUT).build();

  /** An answer: its status and body. */
  public record Answer(int status, String body) {
  }

  /** GET {@code uri}; empty when nothing answers there (not started yet, gone). */
  public Optional<Answer> tryGet(URI uri) throws InterruptedException {
    try {
      return Optional.of(send(HttpRequest.newBuilder(uri).timeout(TIMEOUT).GET().build()));
    } catch (IOException nothingThere) {
      return Optional.empty();
    }
  }

  /**
   * The sum of the Prometheus counter or gauge {@code name} over the series whose labels
   * include {@code labels}, as {@code metrics} (a {@code /metrics} URL) shows it now; 0 when no
   * such series exists yet.
   *
   * @throws IOException when the page cannot be read
   */
  public double metric(URI metrics, String name, Map<String, String> labels)
      throws IOException, InterruptedException {
    Answer answer = send(HttpRequest.newBuilder(metrics).timeout(TIMEOUT).GET().build());
    if (answer.status() != 200) {
      throw new IOException("GET " + metrics + " answered " + answer.status());
    }
    return sum(answer.body(), name, labels);
  }

  /** POST {@code uri} with an empty body, with {@code Authorization: Bearer apiKey} if given. */
  public Answer post(URI uri, String apiKey) throws IOException, InterruptedException {
    HttpRequest.Builder request = HttpRequest.newBuilder(uri).timeout(TIMEOUT)
        .POST(HttpRequest.BodyPublishers.noBody());
    if (apiKey != null) {
      request.header("Authorization", "Bearer " + apiKey);
    }
    return send(request.build());
  }

  private Answer send(HttpRequest request) throws IOException, InterruptedException {
    HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
    return new Answer(response.statusCode(), response.body());
  }

  /**
   * The sum over the lines of Prometheus text {@code name{labels} value} whose labels include
   * every one of {@code labels}.
   */
  static double sum(String prometheusText, String name, Map<String, String> labels) {
    double sum = 0;
    for (String line : prometheusText.split("\n")) {
      if (!line.startsWith(name) || line.length() == name.length()) {
        continue;
      }
      char next = line.charAt(name.length());
      if (next != '{' && next != ' ') {
        continue;
      }
      int end = line.lastIndexOf(' ');
      String series = line.substring(0, end);
      if (labels.entrySet().stream().allMatch(l -> hasLabel(series, l.getKey(), l.getValue()))) {
        sum += Double.parseDouble(line.substring(end + 1));
      }
    }
    return sum;
  }

  private static boolean hasLabel(String series, String key, String value) {
    String label = key + "=\"" + value + "\"";
    return series.contains("{" + label) || series.contains("," + label);
  }
}
