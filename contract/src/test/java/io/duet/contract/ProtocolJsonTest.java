package io.duet.contract;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.Cancel;
import io.duet.contract.CompletionAccepted;
import io.duet.contract.CompletionRequest;
import io.duet.contract.DecodeAccepted;
import io.duet.contract.DecodeEvent;
import io.duet.contract.DecodeRequest;
import io.duet.contract.InstanceInfo;
import io.duet.contract.KvHandle;
import io.duet.contract.Messages;
import io.duet.contract.PrefillRequest;
import io.duet.contract.PrefillResult;
import io.duet.contract.Role;
import io.duet.contract.SamplingSpec;
import io.duet.contract.StreamCredit;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/** Every record of the event-bus contract survives a trip through JSON text. */
class ProtocolJsonTest {

  static final SamplingSpec SAMPLING =
      new SamplingSpec(0.7f, 40, 0.9f, 1234567890123L, 256, List.of(2, 13), List.of("\n\n", "</s>"), true);
  static final KvHandle KV = new KvHandle("prefill-a-1f2e3d", "127.0.0.1", 45123, "tr-9f8e7d6c",
      3, 37, "llama2:15M:f32:6x6x48:b16", 1_700_000_030_000L, "k3y-Ab_9");
  static final InstanceInfo INFO = new InstanceInfo("decode-h-abc123", Role.DECODE, 3, 4, "127.0.0.1",
      9103, 0, "stories15M", "llama2:15M:f32:6x6x48:b16", "llama2", 32,
      new InstanceInfo.Load(5, 2, 1_234_567_890_123L, 40, 512), 1_700_000_000_123L);

  /** As a message crosses the cluster: encoded to text and parsed again. */
  private static JsonObject wire(JsonObject json) {
    return new JsonObject(json.encode());
  }

  @Test
  void instanceInfo() {
    assertEquals(INFO, InstanceInfo.fromJson(wire(INFO.toJson())));
    for (Role role : Role.values()) {
      assertEquals(role, Role.fromWire(role.wireName()));
    }
    InstanceInfo.Load load = INFO.load();
    assertEquals(load, InstanceInfo.Load.fromJson(wire(load.toJson())));
    InstanceInfo later = INFO.withLoad(new InstanceInfo.Load(0, 0, 0, 0, 512), 42L);
    assertEquals(42L, later.heartbeatMillis());
    assertEquals(INFO.instanceId(), later.instanceId());
  }

  @Test
  void instanceInfoStates() {
    assertEquals(InstanceInfo.State.SERVING, INFO.state());
    assertTrue(INFO.isServing());
    for (InstanceInfo.State state : InstanceInfo.State.values()) {
      InstanceInfo announced = INFO.withState(state);
      assertEquals(announced, InstanceInfo.fromJson(wire(announced.toJson())));
      assertEquals(state == InstanceInfo.State.SERVING, announced.isServing());
    }
    JsonObject ofAnOlderBuild = INFO.withState(InstanceInfo.State.DRAINING).toJson();
    ofAnOlderBuild.remove("state");
    assertEquals(INFO, InstanceInfo.fromJson(ofAnOlderBuild), "a heartbeat without a state");
  }

  @Test
  void instanceInfoCapabilities() {
    InstanceInfo capable = INFO.withCapabilities(InstanceInfo.ALL_CAPABILITIES);
    assertEquals(capable, InstanceInfo.fromJson(wire(capable.toJson())));
    assertTrue(capable.can(java.util.Set.of(InstanceInfo.KV_LAYER_STREAMING)));
    assertEquals(capable, capable.withLoad(INFO.load(), INFO.heartbeatMillis())
        .withState(InstanceInfo.State.SERVING).withEngine(""), "updates keep the capabilities");
    JsonObject ofAnOlderBuild = capable.toJson();
    ofAnOlderBuild.remove("capabilities");
    InstanceInfo old = InstanceInfo.fromJson(ofAnOlderBuild);
    assertTrue(old.capabilities().isEmpty(), "an older build announces nothing it can do");
    assertFalse(old.can(java.util.Set.of(InstanceInfo.FIRST_TOKEN_FROM_PREFILL)));
    assertTrue(old.can(java.util.Set.of()));
  }

  @Test
  void instanceInfoEngine() {
    InstanceInfo simulated = INFO.withEngine(InstanceInfo.SIMULATED);
    assertEquals(simulated, InstanceInfo.fromJson(wire(simulated.toJson())));
    assertTrue(simulated.isSimulated());
    assertEquals(simulated, simulated.withLoad(INFO.load(), INFO.heartbeatMillis())
        .withState(InstanceInfo.State.SERVING), "load and state updates keep the engine");
    assertEquals(false, INFO.withEngine("llama2c").isSimulated());
    JsonObject ofAnOlderBuild = simulated.toJson();
    ofAnOlderBuild.remove("engine");
    assertEquals(INFO, InstanceInfo.fromJson(ofAnOlderBuild), "a heartbeat without an engine");
  }

  @Test
  void nestedRecords() {
    assertEquals(SAMPLING, SamplingSpec.fromJson(wire(SAMPLING.toJson())));
    assertEquals(KV, KvHandle.fromJson(wire(KV.toJson())));
  }

  @Test
  void prefillRequest() {
    PrefillRequest request = new PrefillRequest("req-1", "Once upon a time", new int[] {1, 9038, 2501},
        SAMPLING);
    PrefillRequest back = PrefillRequest.fromJson(wire(request.toJson()));
    assertEquals(request.requestId(), back.requestId());
    assertEquals(request.prompt(), back.prompt());
    assertArrayEquals(request.promptTokens(), back.promptTokens());
    assertEquals(request.sampling(), back.sampling());

    PrefillRequest textOnly = new PrefillRequest("req-2", "Hi", new int[0], SAMPLING);
    assertArrayEquals(new int[0], PrefillRequest.fromJson(wire(textOnly.toJson())).promptTokens());
    assertFalse(back.firstTokenFromPrefill());
    assertTrue(PrefillRequest.fromJson(wire(new PrefillRequest("req-3", "Hi", new int[0],
        SAMPLING, true, false).toJson())).firstTokenFromPrefill());
    PrefillRequest streamed = PrefillRequest.fromJson(wire(new PrefillRequest("req-4", "Hi",
        new int[0], SAMPLING, true, true).toJson()));
    assertTrue(streamed.streamKv() && streamed.firstTokenFromPrefill());
    assertFalse(back.streamKv());
  }

  @Test
  void prefillStarted() {
    PrefillStarted started = new PrefillStarted("req-1", KV);
    JsonObject json = wire(started.toJson());
    assertTrue(PrefillStarted.is(json));
    assertEquals(started, PrefillStarted.fromJson(json));
    assertFalse(PrefillStarted.is(wire(new PrefillResult("req-1", 411, 3L, 37, 0, KV, 1, 2)
        .toJson())));
  }

  @Test
  void prefillResult() {
    PrefillResult result = new PrefillResult("req-1", 411, 0x5DEECE66DL, 37, 16, KV, 1200, 45_000);
    assertEquals(result, PrefillResult.fromJson(wire(result.toJson())));
    PrefillResult goesOn = new PrefillResult("req-1", 411, 3L, 37, 0, KV, 1, 2, " Once", null);
    assertEquals(goesOn, PrefillResult.fromJson(wire(goesOn.toJson())));
    PrefillResult endedThere = new PrefillResult("req-1", 2, 3L, 37, 0, null, 1, 2, "", "stop");
    assertEquals(endedThere, PrefillResult.fromJson(wire(endedThere.toJson())));
  }

  @Test
  void decodeRequestAndAccepted() {
    DecodeRequest request = new DecodeRequest("req-1", KV, 411, -7L, 37, SAMPLING,
        "duet.stream.proxy-1.req-1", 32);
    assertEquals(request, DecodeRequest.fromJson(wire(request.toJson())));
    DecodeRequest firstSent = new DecodeRequest("req-1", KV, 411, -7L, 37, SAMPLING,
        "duet.stream.proxy-1.req-1", 32, true, false, false);
    assertEquals(firstSent, DecodeRequest.fromJson(wire(firstSent.toJson())));
    DecodeRequest streamed = new DecodeRequest("req-1", KV, 0, 0L, 37, SAMPLING,
        "duet.stream.proxy-1.req-1", 32, true, true, false);
    assertEquals(streamed, DecodeRequest.fromJson(wire(streamed.toJson())));
    DecodeRequest coalesced = new DecodeRequest("req-1", KV, 411, -7L, 37, SAMPLING,
        "duet.stream.proxy-1.req-1", 32, true, false, true);
    assertEquals(coalesced, DecodeRequest.fromJson(wire(coalesced.toJson())));
    JsonObject ofAnOlderBuild = coalesced.toJson();
    ofAnOlderBuild.remove("coalesce");
    assertFalse(DecodeRequest.fromJson(wire(ofAnOlderBuild)).coalesce(),
        "an older requester's request gets an event per step");
    DecodeAccepted accepted = new DecodeAccepted("req-1", "decode-h-abc123", 4);
    assertEquals(accepted, DecodeAccepted.fromJson(wire(accepted.toJson())));
  }

  @Test
  void decodeEvents() {
    DecodeEvent step = new DecodeEvent("req-1", 0, " there", 1, 1, 37, null, null, null);
    DecodeEvent last = new DecodeEvent("req-1", 7, ".", 2, 12, 37, "stop", null, null);
    DecodeEvent failed = new DecodeEvent("req-1", 8, "", 0, 12, 37, null, "KV_TRANSFER",
        "prefill gone");
    DecodeEvent first = new DecodeEvent("req-1", 0, "Hi", 1, 1, 37, null, null, null, 250, 4100);
    assertEquals(-1, step.queueMicros(), "an event without the decode timing says so");
    assertEquals(4100, DecodeEvent.fromJson(wire(first.toJson())).kvPullMicros());
    for (DecodeEvent event : List.of(step, last, failed, first)) {
      assertEquals(event, DecodeEvent.fromJson(wire(event.toJson())));
    }
    assertEquals(List.of(false, true, true), List.of(step.isLast(), last.isLast(), failed.isLast()));
  }

  @Test
  void controlMessages() {
    Cancel cancel = new Cancel("req-1", "tr-9f8e7d6c", "client disconnected");
    assertEquals(cancel, Cancel.fromJson(wire(cancel.toJson())));
    assertTrue(Cancel.isCancel(cancel.toJson()));
    StreamCredit credit = new StreamCredit("req-1", 16);
    assertEquals(credit, StreamCredit.fromJson(wire(credit.toJson())));
    assertTrue(!Cancel.isCancel(credit.toJson()));
  }

  @Test
  void completionRequestAndAccepted() {
    CompletionRequest chat = CompletionRequest.ofChat("deepseek", List.of(
            new CompletionRequest.Message("system", "Be brief."),
            new CompletionRequest.Message("user", "Hi")), SAMPLING,
            Addresses.clientStream("c1"), 16)
        .withRequestId("req-7").withApiKey("sk-1");
    CompletionRequest back = CompletionRequest.fromJson(wire(chat.toJson()));
    assertEquals(List.of("req-7", "deepseek", "duet.client.c1.stream", "sk-1"),
        List.of(back.requestId(), back.model(), back.streamAddress(), back.apiKey()));
    assertEquals(chat.messages(), back.messages());
    assertEquals(SAMPLING, back.sampling());
    assertEquals(16, back.initialCredits());
    assertEquals(null, back.prompt());
    assertArrayEquals(new int[0], back.promptTokens());

    CompletionRequest tokens = CompletionRequest.ofTokens("m", new int[] {1, 9038}, SAMPLING,
        "a", 1);
    assertArrayEquals(new int[] {1, 9038},
        CompletionRequest.fromJson(wire(tokens.toJson())).promptTokens());
    CompletionRequest text = CompletionRequest.fromJson(wire(
        CompletionRequest.ofPrompt("m", "Once", SAMPLING, "a", 1).toJson()));
    assertEquals("Once", text.prompt());
    assertEquals(List.of(), text.messages());
    assertEquals(null, text.requestId());

    // what a client leaves out reads as absent, for the proxy to name
    CompletionRequest bare = CompletionRequest.fromJson(new JsonObject().put("v", Messages.VERSION));
    assertEquals(null, bare.sampling());
    assertEquals(0, bare.initialCredits());

    CompletionAccepted accepted = new CompletionAccepted("req-7",
        Addresses.proxyControl("proxy-1", 2));
    assertEquals(accepted, CompletionAccepted.fromJson(wire(accepted.toJson())));
  }

  @Test
  void wrongOrMissingVersionIsRefused() {
    PrefillRequest request = new PrefillRequest("r", "p", new int[0], SAMPLING);
    Map<String, JsonObject> messages = Map.of(
        "instance info", INFO.toJson(),
        "prefill request", request.toJson(),
        "prefill result", new PrefillResult("r", 1, 2, 3, 0, KV, 4, 5).toJson(),
        "decode request", new DecodeRequest("r", KV, 1, 2, 3, SAMPLING, "a", 1).toJson(),
        "decode accepted", new DecodeAccepted("r", "d", 0).toJson(),
        "decode event", new DecodeEvent("r", 0, "", 0, 0, 0, null, null, null).toJson(),
        "cancel", new Cancel("r", null, "x").toJson(),
        "stream credit", new StreamCredit("r", 1).toJson(),
        "completion request", CompletionRequest.ofPrompt("m", "p", SAMPLING, "a", 1).toJson(),
        "completion accepted", new CompletionAccepted("r", "c").toJson());
    Map<String, Function<JsonObject, ?>> readers = Map.of(
        "instance info", InstanceInfo::fromJson,
        "prefill request", PrefillRequest::fromJson,
        "prefill result", PrefillResult::fromJson,
        "decode request", DecodeRequest::fromJson,
        "decode accepted", DecodeAccepted::fromJson,
        "decode event", DecodeEvent::fromJson,
        "cancel", Cancel::fromJson,
        "stream credit", StreamCredit::fromJson,
        "completion request", CompletionRequest::fromJson,
        "completion accepted", CompletionAccepted::fromJson);
    assertEquals(messages.keySet(), readers.keySet());
    messages.forEach((what, json) -> {
      Function<JsonObject, ?> reader = readers.get(what);
      assertEquals(Messages.VERSION, json.getInteger("v"), what);
      reader.apply(wire(json)); // the right version reads
      for (Object wrong : new Object[] {Messages.VERSION + 1, 0, "1", null}) {
        JsonObject bad = wire(json).put("v", wrong);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> reader.apply(bad), what + " with v=" + wrong);
        assertTrue(e.getMessage().startsWith(what), e.getMessage());
      }
      JsonObject missing = wire(json);
      missing.remove("v");
      assertThrows(IllegalArgumentException.class, () -> reader.apply(missing), what);
      assertThrows(IllegalArgumentException.class, () -> reader.apply(null), what);
    });
  }
}
