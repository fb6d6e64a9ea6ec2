package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.FinishReason;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.service.StatusPages;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.net.http.HttpResponse;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * MTP speculative decoding served end to end: {@code duet.jar up} of a 1P1D with
 * {@code decode.num-speculative-tokens: 1}, serving a draftable random DeepSeek-V3-shaped
 * checkpoint (its MTP module's drafts mostly right) with DeepSeek-V3's tokenizer. The prefill
 * instance computes the MTP layer's KV, which moves with the rest; greedy text through the
 * proxy equals the engine alone without MTP, and the decode instance's draft counters moved.
 */
class MultiTokenPredictionIT extends DeepSeekServing {

  /** 3 cluster ports, the proxy's, p0's KV and status, d0's status. */
  private static final int PORTS = 7;
  private static final int PROXY = 3;
  private static final int DECODE_STATUS = 6;
  private static final List<String> PROMPTS = List.of("how are you?", "Once upon a time",
      "你好, world 12345", "def main():");
  private static final Pattern DRAFTS =
      StatusPages.metricPattern("duet_decode_spec_draft_tokens_total", "");
  private static final Pattern ACCEPTED =
      StatusPages.metricPattern("duet_decode_spec_draft_tokens_accepted_total", "");

  @BeforeAll
  void upTheTopology() throws Exception {
    openReference(true);
    up("1p1d-mtp.yaml", PORTS, this::topology);
  }

  @Override
  int proxyPort() {
    return PROXY;
  }

  @Test
  void greedyTextWithMtpThroughPrefillAndDecodeEqualsTheEngineAloneWithout() throws Exception {
    int status = launched.base() + DECODE_STATUS;
    double draftsBefore = pages.metric(status, DRAFTS);
    double acceptedBefore = pages.metric(status, ACCEPTED);
    List<JsonObject> bodies = completeAll(PROMPTS);
    for (int i = 0; i < PROMPTS.size(); i++) {
      JsonObject body = bodies.get(i);
      assertEquals(MAX_TOKENS, body.getJsonObject("usage").getInteger("completion_tokens"));
      String text = body.getJsonArray("choices").getJsonObject(0).getString("text");
      assertEquals(engineText(PROMPTS.get(i)), text, PROMPTS.get(i));
    }
    double drafts = pages.metric(status, DRAFTS) - draftsBefore;
    double accepted = pages.metric(status, ACCEPTED) - acceptedBefore;
    assertTrue(drafts > 0, "no draft was verified");
    assertTrue(accepted > drafts / 2, accepted + " of " + drafts + " drafts kept");
  }

  /**
   * A stop string that a step's second token (a kept draft's follower) may complete: the text
   * ends where the engine alone ends it, and the usage counts the same tokens.
   */
  @Test
  void aStopStringEndsTheTextWhereTheEngineAloneEndsIt() throws Exception {
    String prompt = "Once upon a time";
    String full = engineText(prompt);
    String stop = full.substring(full.length() / 2, full.length() / 2 + 2);
    SamplingParams params = new SamplingParams(0f, 0, 1f, 0L, MAX_TOKENS, List.of(),
        List.of(stop), true);
    OfflineGenerator.Completion alone = new OfflineGenerator(reference, 1).generate(
        reference.tokenizer().encode(prompt, true), params);
    assertEquals(FinishReason.STOP, alone.finishReason());
    HttpResponse<String> response = complete(prompt, new JsonArray().add(stop))
        .get(TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    assertEquals(200, response.statusCode(), response::body);
    JsonObject body = new JsonObject(response.body());
    JsonObject choice = body.getJsonArray("choices").getJsonObject(0);
    assertEquals(alone.text(), choice.getString("text"));
    assertEquals("stop", choice.getString("finish_reason"));
    assertEquals(alone.outputTokens().length,
        body.getJsonObject("usage").getInteger("completion_tokens"));
  }

  private String topology(int first) {
    return launched.smallCluster().replace("max-num-seqs: 8}",
        "max-num-seqs: 8, num-speculative-tokens: 1}") + """
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: %d,
               proxy: {port: %d, http-instances: 1}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: %d,
               prefill: {kv-port: %d, http-port: %d}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: %d,
               decode: {http-port: %d}}
        """.formatted(first, first + PROXY, first + 1, first + 4, first + 5, first + 2,
        first + DECODE_STATUS);
  }
}
