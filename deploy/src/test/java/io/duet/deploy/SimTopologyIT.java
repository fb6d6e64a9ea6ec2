package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.deploy.LaunchedTopology.Run;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@code duet.jar up} of a 2P1D whose decode instance has 4 ranks, all on the simulated engine
 * ({@code engine: sim}, no model file; the test's MODEL_PATH is ignored): every instance and
 * rank registers and announces the simulated engine, {@code /v1/models} says
 * {@code owned_by: duet-sim}, and a completion prefilled on one instance and decoded on another
 * (its KV pulled over the KV channel) equals the simulated engine's text alone.
 */
class SimTopologyIT {

  /** 4 cluster ports, the proxy's, 2 x (KV, status) of prefill, 4 decode status ports. */
  private static final int PORTS = 13;
  private static final int RANKS = 4;
  private static final HttpClient HTTP = HttpClient.newHttpClient();

  private LaunchedTopology launched;

  @BeforeEach
  void createWorkDirectory() throws IOException {
    launched = new LaunchedTopology("SimTopologyIT");
  }

  @AfterEach
  void killEverythingAfterTheTest() {
    launched.close();
  }

  @Test
  void aSimulatedTwoPrefillOneDecodeComesUpAndAnswersAsTheSimulatedEngineAlone()
      throws Exception {
    Run up = launched.up("2p1d-sim.yaml", PORTS, this::topology);
    assertEquals(0, up.exit(), up::out);
    int base = launched.base();
    int proxy = base + 4;

    JsonObject models = get(proxy, "/v1/models");
    assertEquals("deepseek", models.getJsonArray("data").getJsonObject(0).getString("id"));
    assertEquals("duet-sim", models.getJsonArray("data").getJsonObject(0).getString("owned_by"));
    assertEquals("duet-sim", get(proxy, "/health").getJsonObject("models")
        .getString("deepseek"));
    for (int port : new int[] {base + 6, base + 8, base + 9, base + 10, base + 11, base + 12}) {
      JsonObject instance = get(port, "/health").getJsonObject("instance");
      assertEquals("sim", instance.getString("engine"), instance::encode);
    }
    Run status = launched.duet("status", launched.topology().toString());
    assertTrue(status.out().contains((3 + RANKS) + " of " + (3 + RANKS) + " serving"),
        status::out);

    String prompt = "how are you?";
    String expected;
    try (Engine alone = Engine.open(new EngineOptions().architecture("sim").threads(1)
        .parameters(Map.of("time-scale", "0")))) {
      expected = new OfflineGenerator(alone, 1).generate(alone.tokenizer().encode(prompt, true),
          SamplingParams.greedy(40)).text();
    }
    for (int i = 0; i < 2; i++) {
      HttpResponse<String> completion = HTTP.send(HttpRequest.newBuilder(
              URI.create("http://127.0.0.1:" + proxy + "/v1/completions"))
          .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
          .POST(HttpRequest.BodyPublishers.ofString(new JsonObject().put("model", "deepseek")
              .put("prompt", prompt).put("temperature", 0).put("max_tokens", 40).encode()))
          .build(), HttpResponse.BodyHandlers.ofString());
      assertEquals(200, completion.statusCode(), completion::body);
      String text = new JsonObject(completion.body()).getJsonArray("choices").getJsonObject(0)
          .getString("text");
      assertEquals(expected, text, completion::body);
      assertTrue(text.matches("( [a-z]+[,.]?)+"), "lorem-ipsum pseudo-text: " + text);
    }

    Run down = launched.duet("down", launched.topology().toString());
    assertEquals(0, down.exit(), down::out);
  }

  private static JsonObject get(int port, String path) throws Exception {
    HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(
        URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(10)).build(),
        HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode(), path + ": " + response.body());
    return new JsonObject(response.body());
  }

  /** The 2P1D on the ports from {@code base}; the decode instance's ranks from base + 9. */
  private String topology(int base) {
    return launched.smallCluster() + """
        engine: sim
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: %d,
               proxy: {port: %d, http-instances: 1}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          p1: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: %d,
               decode: {dp: %d, ep: %d, http-port: %d}}
        """.formatted(base, base + 4, base + 1, base + 5, base + 6, base + 2, base + 7,
        base + 8, base + 3, RANKS, RANKS, base + 9);
  }
}
