package io.duet.deploy.impl;

import io.duet.cluster.Topology;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.vertx.core.json.DecodeException;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Optional;

/**
 * {@code GET /health} of an instance's endpoint: a proxy answers 200 while it serves a model; a
 * prefill instance or a decode rank answers 200 with its registry entry ({@link InstanceInfo}).
 */
public final class HealthProbe {

  /**
   * What an endpoint answered.
   *
   * @param status the HTTP status, 0 when nothing answered
   * @param body the body, or why nothing answered
   */
  public record Answer(int status, String body) {

    /** The registry entry a prefill or decode endpoint answers with, if it did. */
    public Optional<InstanceInfo> instance() {
      try {
        JsonObject json = new JsonObject(body);
        return json.getValue("instance") instanceof JsonObject info
            ? Optional.of(InstanceInfo.fromJson(info)) : Optional.empty();
      } catch (DecodeException | IllegalArgumentException | ClassCastException e) {
        return Optional.empty();
      }
    }

    /**
     * Why {@code endpoint} of {@code instance} does not serve, or null when it does: a proxy
     * serves when it answers 200; a prefill instance or a decode rank when it answers 200 naming
     * itself as that instance and rank (not a stale process of another run on the same port).
     */
    public String notServing(Topology.Instance instance, Topology.Endpoint endpoint) {
      if (status != 200) {
        return status == 0 ? body : status + " " + body;
      }
      if (instance.role() == Role.PROXY) {
        return null;
      }
      Optional<InstanceInfo> info = instance();
      if (info.isEmpty()) {
        return "answers no instance: " + body;
      }
      boolean expected = info.get().instanceId().equals(instance.name())
          && info.get().dpRank() == Math.max(0, endpoint.rank());
      return expected ? null
          : "answers as " + info.get().instanceId() + " rank " + info.get().dpRank();
    }
  }

  private final Duration timeout;
  private final HttpClient http;

  /** @param timeout how long connecting and the answer may take each */
  public HealthProbe(Duration timeout) {
    this.timeout = timeout;
    this.http = HttpClient.newBuilder().connectTimeout(timeout).build();
  }

  /** The endpoint's answer; never throws for an endpoint that does not answer. */
  public Answer get(Topology.Endpoint endpoint) {
    String host = endpoint.host().contains(":") ? "[" + endpoint.host() + "]" : endpoint.host();
    URI uri = URI.create("http://" + host + ":" + endpoint.port() + "/health");
    try {
      HttpResponse<String> response = http.send(HttpRequest.newBuilder(uri).timeout(timeout)
          .GET().build(), HttpResponse.BodyHandlers.ofString());
      return new Answer(response.statusCode(), response.body());
    } catch (IOException e) {
      // a refused connection's exception has no message: its class says it
      return new Answer(0, "nothing answers " + uri + " (" + e.getClass().getSimpleName()
          + (e.getMessage() == null ? "" : ": " + e.getMessage()) + ")");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new Answer(0, uri + ": interrupted");
    }
  }
}
