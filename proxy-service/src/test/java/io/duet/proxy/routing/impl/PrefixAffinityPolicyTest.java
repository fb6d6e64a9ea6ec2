package io.duet.proxy.routing.impl;

import static io.duet.proxy.routing.Entries.MODEL;
import static io.duet.proxy.routing.Entries.prefill;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.proxy.routing.PrefillCandidate;
import io.duet.proxy.routing.RoutingRequest;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

class PrefixAffinityPolicyTest {

  /** The test's key: 4 tokens, so the first 16 characters of a text. */
  private static final String PREFIX = "You are a robot.";

  private final SimpleMeterRegistry metrics = new SimpleMeterRegistry();
  private final PrefixAffinityPolicy policy = policy(new JsonObject().put("prefix-tokens", "4"));

  private PrefixAffinityPolicy policy(JsonObject params) {
    return (PrefixAffinityPolicy) new PrefixAffinityPolicy.Factory().create(params, metrics);
  }

  /** A prefill instance with {@code tokens} prompt tokens in flight, capacity 2048. */
  private static PrefillCandidate loaded(String id, long tokens) {
    return new PrefillCandidate(prefill(id, MODEL, tokens), 0);
  }

  private static List<PrefillCandidate> idle(int n) {
    List<PrefillCandidate> candidates = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      candidates.add(loaded("p" + i, 0));
    }
    return candidates;
  }

  private String chosen(String prompt, List<PrefillCandidate> candidates) {
    return policy.choose(RoutingRequest.ofText("r", MODEL, prompt, 16), candidates).orElseThrow()
        .entry().instanceId();
  }

  private double outcomes(String outcome) {
    return metrics.get("duet.routing.affinity").tag("outcome", outcome).counter().count();
  }

  private static String randomPrefix(Random random) {
    StringBuilder prefix = new StringBuilder();
    for (int i = 0; i < 16; i++) {
      prefix.append((char) ('a' + random.nextInt(26)));
    }
    return prefix.toString();
  }

  @Test
  void promptsThatBeginAlikeGoToOneInstanceWhateverFollows() {
    List<PrefillCandidate> four = idle(4);
    String instance = chosen(PREFIX, four);
    for (String rest : List.of(" Hello", " Tell me a story about the sea.", "!", "")) {
      assertEquals(instance, chosen(PREFIX + rest, four), rest);
    }
    assertEquals(5, outcomes("hit"));
  }

  @Test
  void theKeyIsTheFirstPrefixTokensTimesFourCharacters() {
    RoutingRequest base = RoutingRequest.ofText("a", MODEL, PREFIX + "xyz", 16);
    assertEquals(policy.prefixKey(base),
        policy.prefixKey(RoutingRequest.ofText("b", MODEL, PREFIX + "abc", 16)));
    assertNotEquals(policy.prefixKey(base), policy.prefixKey(RoutingRequest.ofText("c", MODEL,
        "You are a robot!xyz", 16)), "the 16th character is part of the key");
    assertTrue(policy.prefixKey(RoutingRequest.ofText("d", MODEL, PREFIX.substring(1), 16))
        .isEmpty());
  }

  @Test
  void differentPrefixesSpreadOverTheInstances() {
    Map<String, Integer> counts = new HashMap<>();
    Random random = new Random(7);
    for (int i = 0; i < 400; i++) {
      counts.merge(chosen(randomPrefix(random), idle(4)), 1, Integer::sum);
    }
    assertEquals(4, counts.size(), counts.toString());
    counts.values().forEach(n -> assertTrue(n > 60, counts.toString()));
  }

  @Test
  void anInstanceThatJoinsTakesOnlyPrefixesAwayFromTheOthersThatItNowScoresHighestOn() {
    Random random = new Random(11);
    int moved = 0;
    int keys = 2000;
    for (int i = 0; i < keys; i++) {
      String prompt = randomPrefix(random);
      String before = chosen(prompt, idle(4));
      String after = chosen(prompt, idle(5));
      if (!before.equals(after)) {
        assertEquals("p4", after, "a prefix moves only to the new instance");
        moved++;
      }
    }
    // one in five expected
    assertTrue(moved > keys / 10 && moved < keys * 3 / 10, moved + " of " + keys + " moved");
  }

  @Test
  void theInstanceOfThePrefixIsGivenUpWhenItIsBusierThanTheFactorAllows() {
    List<PrefillCandidate> idle = idle(2);
    String affine = chosen(PREFIX, idle);
    String other = affine.equals("p0") ? "p1" : "p0";
    // factor 2 x the least load (0) + one batch of its own (2048 tokens)
    assertEquals(affine, chosen(PREFIX, List.of(loaded(affine, 2048), loaded(other, 0))));
    assertEquals(other, chosen(PREFIX, List.of(loaded(affine, 2049), loaded(other, 0))));
    assertEquals(affine, chosen(PREFIX, List.of(loaded(affine, 4048), loaded(other, 1000))));
    assertEquals(other, chosen(PREFIX, List.of(loaded(affine, 4049), loaded(other, 1000))));
    assertEquals(2, outcomes("fallback"));
    assertEquals(3, outcomes("hit"));

    PrefixAffinityPolicy lenient = policy(new JsonObject().put("prefix-tokens", 4)
        .put("load-factor", 3));
    assertEquals(affine, lenient.choose(RoutingRequest.ofText("r", MODEL, PREFIX, 16),
        List.of(loaded(affine, 4049), loaded(other, 1000))).orElseThrow().entry().instanceId());
  }

  @Test
  void thisProxysOwnPromptTokensCountAsLoad() {
    String affine = chosen(PREFIX, idle(2));
    String other = affine.equals("p0") ? "p1" : "p0";
    assertEquals(other, chosen(PREFIX, List.of(new PrefillCandidate(prefill(affine, MODEL, 49),
        2000), loaded(other, 0))));
  }

  @Test
  void aPromptShorterThanTheKeyGoesToTheLeastLoadedInstance() {
    assertEquals("p1", chosen("Hi", List.of(loaded("p0", 10), loaded("p1", 5),
        loaded("p2", 7))));
    assertEquals(1, outcomes("no-prefix"));
  }

  @Test
  void aPromptOfTokenIdsIsKeyedByItsFirstIds() {
    List<PrefillCandidate> four = idle(4);
    RoutingRequest first = RoutingRequest.ofTokens("a", MODEL, List.of(1, 5, 6, 7, 8, 9), 16);
    RoutingRequest second = RoutingRequest.ofTokens("b", MODEL, List.of(1, 5, 6, 7, 42), 16);
    assertEquals(policy.prefixKey(first), policy.prefixKey(second));
    assertEquals(policy.choose(first, four), policy.choose(second, four));
    assertTrue(policy.prefixKey(RoutingRequest.ofTokens("c", MODEL, List.of(1, 5, 6), 16))
        .isEmpty());
  }

  @Test
  void theParametersHaveDefaultsAndAreChecked() {
    PrefixAffinityPolicy defaults = policy(new JsonObject());
    String text = "x".repeat(PrefixAffinityPolicy.DEFAULT_PREFIX_TOKENS * 4);
    assertTrue(defaults.prefixKey(RoutingRequest.ofText("a", MODEL, text, 16)).isPresent());
    assertTrue(defaults.prefixKey(RoutingRequest.ofText("a", MODEL, text.substring(1), 16))
        .isEmpty());

    for (JsonObject bad : List.of(new JsonObject().put("prefix-tokens", "0"),
        new JsonObject().put("prefix-tokens", "2.5"), new JsonObject().put("prefix-tokens", "x"),
        new JsonObject().put("load-factor", "0.5"), new JsonObject().put("weight", 1))) {
      assertThrows(IllegalArgumentException.class, () -> policy(bad), bad.encode());
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> policy(new JsonObject().put("load-factor", "lots")));
    assertEquals("routing policy prefix-affinity: load-factor must be a number >= 1, got 'lots'",
        e.getMessage());
  }
}
