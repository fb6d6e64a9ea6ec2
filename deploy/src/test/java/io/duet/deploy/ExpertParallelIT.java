package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.service.StatusPages;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link ExpertParallelServing} with the ranks in one JVM: a 2P1D whose decode instance has 4
 * ranks sharing the routed experts ({@code dp: 4, ep: 4}). A streamed chat is rendered with
 * DeepSeek-V3's template, which the model's {@code tokenizer_config.json} names.
 */
class ExpertParallelIT extends ExpertParallelServing {

  /**
   * 4 cluster ports, the proxy's, p0's and p1's KV and status, and the status ports of d0's 4
   * ranks.
   */
  private static final int PORTS = 13;
  private static final int PROXY = 4;
  private static final int RANK0_STATUS = 9;
  private static final int RANKS = 4;

  @BeforeAll
  void upTheTopology() throws Exception {
    up("2p1d-ep4.yaml", PORTS, this::topology);
    String log = Files.readString(launched.log("d0"));
    assertTrue(log.contains("expert parallelism: 1 groups of 4 ranks, each rank holding 4 of "
        + "16 expert slots"), "d0's log says how it split the experts");
  }

  @Override
  int proxyPort() {
    return PROXY;
  }

  @Override
  List<Integer> rankStatusPorts() {
    return IntStream.range(0, RANKS).mapToObj(rank -> RANK0_STATUS + rank).toList();
  }

  @Test
  void aStreamedChatIsRenderedWithDeepSeekV3sTemplateAndAnsweredAsTheEngineAloneWould()
      throws Exception {
    JsonObject chat = new JsonObject().put("model", MODEL).put("temperature", 0)
        .put("max_tokens", MAX_TOKENS).put("stream", true).put("messages", new JsonArray()
            .add(new JsonObject().put("role", "user").put("content", "how are you?")));
    HttpResponse<String> response = http.send(HttpRequest.newBuilder(StatusPages.uri(
            launched.base() + PROXY, "/v1/chat/completions")).timeout(TIMEOUT)
        .header("Content-Type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(chat.encode())).build(),
        HttpResponse.BodyHandlers.ofString());
    assertEquals(200, response.statusCode(), response::body);
    StringBuilder content = new StringBuilder();
    for (String line : response.body().split("\n")) {
      if (line.startsWith("data: {")) {
        new JsonObject(line.substring(6)).getJsonArray("choices").stream()
            .map(choice -> ((JsonObject) choice).getJsonObject("delta"))
            .forEach(delta -> content.append(delta.getString("content", "")));
      }
    }
    assertTrue(response.body().trim().endsWith("data: [DONE]"), response::body);
    // DeepSeek-V3's template for one user message (ChatTemplateTest holds it to the Jinja's
    // rendering): the BOS as text, the user's turn, the assistant's; the model may end early.
    String rendered = "<｜begin▁of▁sentence｜><｜User｜>how are you?<｜Assistant｜>";
    expected.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS); // the reference engine is free again
    assertEquals(engineText(rendered, MAX_TOKENS, false), content.toString());
  }

  private String topology(int first) {
    return launched.smallCluster() + """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: %d,
               proxy: {port: %d, http-instances: 1, decode-policy: least-load, kv-layer-streaming: true}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          p1: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: %d,
               decode: {dp: %d, ep: %d, http-port: %d}}
        """.formatted(first, first + PROXY, first + 1, first + 5, first + 6, first + 2,
        first + 7, first + 8, first + 3, RANKS, RANKS, first + RANK0_STATUS);
  }
}
