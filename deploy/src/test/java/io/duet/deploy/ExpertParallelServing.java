package io.duet.deploy;

import static io.duet.service.StatusPages.DECODE_TOKENS;
import static io.duet.service.StatusPages.KV_BLOCKS_USED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.service.StatusPages;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Expert parallelism served end to end, whatever the decode instance's layout: a
 * {@link DeepSeekServing} topology whose decode ranks share the routed experts. Greedy text
 * through the proxy equals the engine alone holding every expert, and every rank took part in
 * the all-to-all of the requests' steps (its exchange counter moved), whether it decoded any of
 * them or not. Each subclass starts its topology with {@link #up}.
 */
abstract class ExpertParallelServing extends DeepSeekServing {

  private static final List<String> PROMPTS = List.of("how are you?", "Once upon a time",
      "你好, world 12345", "def main():", "The robot", "In the quiet lab, a", "Pixels",
      "A dream of");
  private static final Pattern EXCHANGE_SECONDS =
      StatusPages.metricPattern("duet_expert_exchange_seconds_total", "");

  /** The engine's own texts for {@link #PROMPTS}, computed while the topology comes up. */
  CompletableFuture<List<String>> expected;

  /**
   * Writes the checkpoint, starts computing the reference texts and brings up the topology
   * {@code topologyOn} writes for its first port ({@code ports} ports from there) as
   * {@code fileName}.
   */
  @Override
  void up(String fileName, int ports, IntFunction<String> topologyOn) throws Exception {
    openReference(false);
    expected = onReference(() -> PROMPTS.stream().map(this::engineText).toList());
    super.up(fileName, ports, topologyOn);
  }

  /** The status ports of every decode rank of the expert-parallel instance, as offsets. */
  abstract List<Integer> rankStatusPorts();

  @Test
  void greedyTextThroughTheExpertParallelRanksEqualsTheEngineAlone() throws Exception {
    List<Integer> ranks = rankStatusPorts();
    // The ranks warmed up together: each has exchanged before the first request.
    double[] exchangedBefore = new double[ranks.size()];
    for (int rank = 0; rank < ranks.size(); rank++) {
      exchangedBefore[rank] = pages.metric(launched.base() + ranks.get(rank), EXCHANGE_SECONDS);
    }
    List<JsonObject> bodies = completeAll(PROMPTS);
    for (int i = 0; i < PROMPTS.size(); i++) {
      String text = bodies.get(i).getJsonArray("choices").getJsonObject(0).getString("text");
      assertEquals(expected.get(TIMEOUT.toSeconds(), TimeUnit.SECONDS).get(i), text,
          PROMPTS.get(i));
    }
    int decodingRanks = 0;
    for (int rank = 0; rank < ranks.size(); rank++) {
      int port = launched.base() + ranks.get(rank);
      if (pages.metric(port, DECODE_TOKENS) > 0) {
        decodingRanks++;
      }
      assertTrue(pages.metric(port, EXCHANGE_SECONDS) > exchangedBefore[rank],
          "rank " + rank + " took part in the all-to-all of the requests' steps");
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (pages.metric(port, KV_BLOCKS_USED) != 0) {
        assertTrue(System.nanoTime() < deadline, "rank " + rank + " still holds KV blocks");
        Thread.sleep(20);
      }
    }
    assertTrue(decodingRanks >= 2, "the requests were spread over the ranks: " + decodingRanks);
  }
}
