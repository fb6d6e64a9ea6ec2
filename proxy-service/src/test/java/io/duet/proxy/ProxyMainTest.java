package io.duet.proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.InstanceInfo;
import io.duet.proxy.routing.DecodeClaim;
import io.duet.proxy.routing.DecodeTarget;
import io.duet.proxy.routing.Entries;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingOptions;
import io.duet.proxy.testpolicy.PinnedDecodePolicy;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ProxyMainTest {

  @Test
  void oneHttpServerUnlessConfigured() {
    DuetConfig defaults = DuetConfig.defaults();
    assertEquals(1, ProxyMain.options(defaults).getInstances());
    assertEquals(Runtime.getRuntime().availableProcessors(),
        ProxyMain.options(defaults.with(Settings.PROXY_HTTP_INSTANCES, 0)).getInstances(),
        "0: one per core");
    assertEquals(3, ProxyMain.options(defaults.with(Settings.PROXY_HTTP_INSTANCES, 3))
        .getInstances());
    assertThrows(IllegalArgumentException.class,
        () -> defaults.with(Settings.PROXY_HTTP_INSTANCES, -1));
  }

  @Test
  void optionsComeFromTheSettingsWhoseDefaultsAreTheOptionsDefaults() {
    // but the drain: a proxy deployed by code closes at once, a proxy service drains
    assertEquals(new ProxyOptions().setDrainTimeoutMillis(
            Settings.INSTANCE_DRAIN_TIMEOUT_SECONDS.defaultValue() * 1000L).toJson(),
        ProxyMain.options(DuetConfig.defaults()).toJson());
    assertEquals(0, ProxyOptions.DEFAULT_DRAIN_TIMEOUT_MILLIS);
    assertEquals(5000, ProxyMain.options(DuetConfig.defaults()
        .with(Settings.INSTANCE_DRAIN_TIMEOUT_SECONDS, 5)).getDrainTimeoutMillis());
    assertEquals("127.0.0.1", ProxyOptions.DEFAULT_HOST);
    ProxyOptions options = ProxyMain.options(DuetConfig.defaults()
        .with(Settings.PROXY_HOST, "0.0.0.0")
        .with(Settings.PROXY_PORT, 7100)
        .with(Settings.API_KEY, Optional.of("sk-1"))
        .with(Settings.MODEL_CHAT_TEMPLATE, Optional.of(ChatTemplate.PLAIN))
        .with(Settings.PROXY_MAX_BODY_BYTES, 4096)
        .with(Settings.PROXY_COMPLETION_MAX_TOKENS, 5)
        .with(Settings.PROXY_CHAT_MAX_TOKENS, 6));
    assertEquals(List.of("0.0.0.0", 7100, "sk-1", ChatTemplate.PLAIN, 4096, 5, 6),
        List.of(options.getHost(), options.getPort(), options.getApiKey(),
            options.getChatTemplate(), options.getMaxBodyBytes(), options.getCompletionMaxTokens(),
            options.getChatMaxTokens()));
  }

  @Test
  void anEmbeddedProxyWithoutAClusterNameHasAClusterOfItsOwn() {
    DuetConfig defaults = DuetConfig.defaults();
    assertEquals("duet-embedded-1", ProxyMain.ownCluster(defaults, "duet-embedded-1")
        .get(Settings.CLUSTER_NAME));
    assertEquals("duet", ProxyMain.ownCluster(defaults.with(Settings.CLUSTER_NAME, "duet"),
        "duet-embedded-1").get(Settings.CLUSTER_NAME), "a name given, even the default");
    assertEquals("duet", ProxyMain.ownCluster(defaults.with(Settings.PROXY_EMBEDDED, false),
        "duet-embedded-1").get(Settings.CLUSTER_NAME), "a proxy alone joins the instances");
  }

  @Test
  void optionsRefuseWhatTheSettingsRefuse() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new ProxyOptions().setPort(70000));
    assertTrue(e.getMessage().startsWith("proxy.port must be an integer in 0..65535"),
        e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new ProxyOptions().setMaxBodyBytes(0));
    assertThrows(IllegalArgumentException.class, () -> new ProxyOptions().setChatMaxTokens(0));
  }

  @Test
  void routingPoliciesAndTheirParametersComeFromTheConfiguration() {
    DuetConfig pinned = DuetConfig.defaults()
        .with(Settings.PROXY_DECODE_POLICY, PinnedDecodePolicy.NAME)
        .with(Settings.PROXY_DECODE_POLICY_PARAMS, Map.of("instance", "d1"));
    Routing routing = ProxyMain.routing(pinned, new SimpleMeterRegistry());
    List<InstanceInfo> idle = List.of(Entries.decode("d0", 8, 0, 0), Entries.decode("d1", 8, 0, 0));
    assertEquals(new DecodeTarget("d1", 0), routing.claimDecode(idle,
        Entries.request("r1", 10, 16), Entries.FINGERPRINT, Set.of(), target -> { }).target());
  }

  @Test
  void theDecodeRankCapAndTheQueueSizeComeFromTheConfiguration() {
    DuetConfig config = DuetConfig.defaults().with(Settings.PROXY_DECODE_RANK_CAP, 1)
        .with(Settings.PROXY_QUEUE_SIZE, 1);
    Routing routing = ProxyMain.routing(config, new SimpleMeterRegistry());
    List<InstanceInfo> one = List.of(Entries.decode("d0", 8, 0, 0));
    List<DecodeClaim.Outcome> outcomes = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      outcomes.add(routing.claimDecode(one, Entries.request("r" + i, 10, 16),
          Entries.FINGERPRINT, Set.of(), target -> { }).outcome());
    }
    assertEquals(List.of(DecodeClaim.Outcome.PLACED, DecodeClaim.Outcome.WAITING,
        DecodeClaim.Outcome.QUEUE_FULL), outcomes);
    assertEquals(new RoutingOptions().toJson(),
        ProxyMain.routingOptions(DuetConfig.defaults()).toJson(), "the defaults agree");
  }

  @Test
  void aMisnamedPolicyOrAParameterItDoesNotTakeFailsTheStartSayingWhy() {
    DuetConfig defaults = DuetConfig.defaults();
    SimpleMeterRegistry metrics = new SimpleMeterRegistry();
    IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
        () -> ProxyMain.routing(defaults.with(Settings.PROXY_DECODE_POLICY, "round-robin"),
            metrics));
    assertEquals("unknown decode routing policy 'round-robin'; known decode policies: "
        + "least-load, longest-first, test-pinned", unknown.getMessage());
    IllegalArgumentException parameter = assertThrows(IllegalArgumentException.class,
        () -> ProxyMain.routing(defaults.with(Settings.PROXY_PREFILL_POLICY_PARAMS,
            Map.of("weight", "2")), metrics));
    assertEquals("routing policy least-prompt-tokens takes no parameters, got {\"weight\":\"2\"}",
        parameter.getMessage());
  }
}
