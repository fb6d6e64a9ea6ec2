package io.duet.decode;

import static io.duet.service.ServiceTests.SEQ_LEN;
import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.eventually;
import static io.duet.service.ServiceTests.warmUpTheKernels;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.DecodeAccepted;
import io.duet.contract.DecodeEvent;
import io.duet.contract.DecodeRequest;
import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.KvHandle;
import io.duet.contract.PrefillRequest;
import io.duet.contract.PrefillResult;
import io.duet.contract.Role;
import io.duet.contract.SamplingSpec;
import io.duet.contract.StreamCredit;
import io.duet.kv.KvFrame;
import io.duet.engine.Engine;
import io.duet.engine.FinishReason;
import io.duet.kv.KvStreamWriter;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import io.duet.prefill.PrefillOptions;
import io.duet.prefill.PrefillVerticle;
import io.duet.service.ServiceTests.Engines;
import io.micrometer.core.instrument.Counter;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.eventbus.ReplyException;
import io.vertx.core.json.JsonObject;
import io.vertx.core.net.NetSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The decode instance with a real prefill instance (separate engines, KV over TCP on
 * 127.0.0.1) or a fake one that misbehaves, in one JVM on a local Vert.x. Requests go to the
 * decode address, events come back on the test's own stream address, credits and cancels go
 * to the control address; the engines' block gauges show that every path out frees the KV.
 *
 * <p>That nothing more comes on a stream is shown without waiting a while for it: the decode
 * instance sends every event from its one Vert.x context, and the event bus delivers the
 * messages of one sender to a consumer in the order they were sent. So a later request whose
 * events go to the same stream address is a barrier: an event of an earlier request that the
 * instance sent before the later request's events comes before them, and
 * {@link EventStream#untilLast} fails on an event of another request.
 */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class DecodeFailurePathTest {

  private static final String P = "p-test";
  private static final String D = "d-test";
  private static final String PROMPT = "Once upon a time";

  private Vertx vertx;
  private final Engines engines = new Engines();
  private Engine prefillEngine;
  private Engine decodeEngine;
  private Engine reference;
  private PrefillVerticle prefill;
  private DecodeVerticle decode;
  private PrometheusMeterRegistry decodeMetrics;
  private final List<EventStream> streams = new ArrayList<>();

  // ---------------------------------------------------------------------------------- plumbing

  private int dUsed() {
    return decodeEngine.kvStats().usedBlocks();
  }

  private int pUsed() {
    return prefillEngine.kvStats().usedBlocks();
  }

  private void eventuallyNoBlocksOnD() {
    eventually("decode engine used blocks == 0 (last " + dUsed() + ")", Duration.ofSeconds(5),
        () -> dUsed() == 0);
  }

  private void eventuallyNoBlocksOnP() {
    eventually("prefill engine used blocks == 0 (last " + pUsed() + ")", Duration.ofSeconds(5),
        () -> pUsed() == 0);
  }

  private double decodedTokens() {
    Counter counter = decodeMetrics.find("duet_decode_tokens_total").counter();
    return counter == null ? 0 : counter.count();
  }

  static SamplingSpec greedy(int maxTokens) {
    return SamplingSpec.greedy(maxTokens);
  }

  static SamplingSpec greedyIgnoringEos(int maxTokens) {
    return SamplingSpec.greedy(maxTokens).ignoringEos();
  }

  @BeforeAll
  static void warmUp() throws Exception {
    warmUpTheKernels();
  }

  @BeforeEach
  void start() throws Exception {
    vertx = Vertx.vertx();
    prefillEngine = engines.open(256);
    decodeEngine = engines.open(256);
    reference = engines.open(256);
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  private void deploy(int maxNumSeqs) throws Exception {
    deploy(maxNumSeqs, 8_000);
  }

  private void deploy(int maxNumSeqs, long pullTimeoutMillis) throws Exception {
    deploy(maxNumSeqs, pullTimeoutMillis, null, 0);
  }

  /**
   * As {@link #deploy(int, long)}; the worker of {@code draining} (when not null) heartbeats and
   * drains for up to {@code drainSeconds} when undeployed, as a service's main deploys it.
   */
  private void deploy(int maxNumSeqs, long pullTimeoutMillis, Role draining, int drainSeconds)
      throws Exception {
    prefill = new PrefillVerticle(prefillEngine, new PrefillOptions(P, "aidreams", "127.0.0.1", 0,
        0, 512, 64, 30_000, 10_000), new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    decodeMetrics = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    decode = new DecodeVerticle(decodeEngine, new DecodeOptions(D, "aidreams", "127.0.0.1", 0, 0,
        1, maxNumSeqs, 64, pullTimeoutMillis, 2), decodeMetrics);
    if (draining != null) {
      (draining == Role.PREFILL ? prefill : decode).heartbeatWith(DuetConfig.defaults()
          .with(Settings.INSTANCE_DRAIN_TIMEOUT_SECONDS, drainSeconds));
    }
    await(vertx.deployVerticle(prefill).compose(id -> vertx.deployVerticle(decode)));
  }

  /** Decode events arriving on a stream address of the test's own. */
  final class EventStream {
    final String address = "test.stream." + UUID.randomUUID();
    private final BlockingQueue<DecodeEvent> queue = new LinkedBlockingQueue<>();
    private final MessageConsumer<JsonObject> consumer;

    EventStream() throws Exception {
      consumer = vertx.eventBus().consumer(address,
          m -> queue.add(DecodeEvent.fromJson(m.body())));
      await(consumer.completion());
    }

    DecodeEvent next() throws InterruptedException {
      DecodeEvent event = queue.poll(5, TimeUnit.SECONDS);
      assertNotNull(event, "no decode event on " + address + " within 5 s");
      return event;
    }

    /**
     * Every event of {@code requestId} up to and including its last one, granting credit as
     * they come; fails on an event of another request.
     */
    List<DecodeEvent> untilLast(String requestId) throws InterruptedException {
      List<DecodeEvent> events = new ArrayList<>();
      while (true) {
        DecodeEvent event = next();
        assertEquals(requestId, event.requestId());
        assertEquals(events.size(), event.sequence(), "events are numbered 0, 1, 2, ...");
        events.add(event);
        if (event.isLast()) {
          return events;
        }
        credit(requestId, 1);
      }
    }
  }

  private EventStream stream() throws Exception {
    EventStream stream = new EventStream();
    streams.add(stream);
    return stream;
  }

  private PrefillResult prefill(String requestId, String prompt, SamplingSpec sampling)
      throws Exception {
    return await(vertx.eventBus().<JsonObject>request(Addresses.prefill(P),
            new PrefillRequest(requestId, prompt, new int[0], sampling).toJson())
        .map(Message::body).map(PrefillResult::fromJson));
  }

  private static DecodeRequest decodeRequest(String requestId, PrefillResult result,
      SamplingSpec sampling, EventStream stream, int credits) {
    return decodeRequest(requestId, result, result.kv(), sampling, stream, credits);
  }

  /** As the prefill result says, but with the KV handle {@code kv}. */
  private static DecodeRequest decodeRequest(String requestId, PrefillResult result, KvHandle kv,
      SamplingSpec sampling, EventStream stream, int credits) {
    return new DecodeRequest(requestId, kv, result.firstToken(), result.samplerState(),
        result.promptTokens(), sampling, stream.address, credits);
  }

  /** {@code kv} with another transfer id and fingerprint. */
  private static KvHandle altered(KvHandle kv, String transferId, String fingerprint) {
    return new KvHandle(kv.prefillInstanceId(), kv.host(), kv.port(), transferId,
        kv.blockCount(), kv.tokenCount(), fingerprint, kv.leaseExpiresAtMillis(), kv.pullKey());
  }

  private Future<DecodeAccepted> decode(DecodeRequest request) {
    return vertx.eventBus().<JsonObject>request(Addresses.decode(D, 0), request.toJson(),
            new DeliveryOptions().setSendTimeout(8_000))
        .map(Message::body).map(DecodeAccepted::fromJson);
  }

  private void credit(String requestId, int credits) {
    vertx.eventBus().send(Addresses.decodeControl(D, 0),
        new StreamCredit(requestId, credits).toJson());
  }

  private void cancelDecode(String requestId) {
    vertx.eventBus().send(Addresses.decodeControl(D, 0),
        new Cancel(requestId, null, "test").toJson());
  }

  private OfflineGenerator.Completion expected(String prompt, SamplingParams params) {
    int[] tokens = reference.tokenizer().encode(prompt, true);
    return new OfflineGenerator(reference, 1).generate(tokens, params);
  }

  /** Tokens the decode side counts: every sampled token, a final stop token included. */
  private static int completionTokens(OfflineGenerator.Completion c) {
    return c.outputTokens().length + (c.finishReason() == FinishReason.STOP ? 1 : 0);
  }

  private static String text(List<DecodeEvent> events) {
    StringBuilder text = new StringBuilder();
    events.forEach(e -> text.append(e.text()));
    return text.toString();
  }

  /** Prefills {@code prompt} on the real prefill instance and decodes it to the end. */
  private List<DecodeEvent> decodeToEnd(String requestId, String prompt, int maxTokens)
      throws Exception {
    return decodeToEnd(requestId, prompt, maxTokens, stream());
  }

  /**
   * As {@link #decodeToEnd(String, String, int)}, the events going to {@code stream}: after
   * the events {@code stream} already had, a barrier (see the class comment).
   */
  private List<DecodeEvent> decodeToEnd(String requestId, String prompt, int maxTokens,
      EventStream stream) throws Exception {
    PrefillResult result = prefill(requestId, prompt, greedy(maxTokens));
    await(decode(decodeRequest(requestId, result, greedy(maxTokens), stream, 4)));
    List<DecodeEvent> events = stream.untilLast(requestId);
    DecodeEvent last = events.get(events.size() - 1);
    assertNull(last.failure(), () -> "decode failed: " + last.error());
    assertEquals(expected(prompt, SamplingParams.greedy(maxTokens)).text(), text(events));
    return events;
  }

  /**
   * The events {@code stream} received before the first event of a short request whose events
   * the decode instance then sends to {@code stream} too: every event the instance had sent
   * there by then (see the class comment). Decodes that request to its end.
   */
  private List<DecodeEvent> sentBeforeABarrier(EventStream stream, String barrierId)
      throws Exception {
    PrefillResult result = prefill(barrierId, PROMPT, greedy(4));
    await(decode(decodeRequest(barrierId, result, greedy(4), stream, 64)));
    List<DecodeEvent> before = new ArrayList<>();
    DecodeEvent event = stream.next();
    while (!event.requestId().equals(barrierId)) {
      before.add(event);
      event = stream.next();
    }
    while (!event.isLast()) {
      event = stream.next();
      assertEquals(barrierId, event.requestId());
    }
    return before;
  }

  /** A prompt exported by the reference engine, for the fake prefill instance to serve. */
  private record Export(int[] tokens, int firstToken, byte[] header, List<byte[]> chunks) {
  }

  private Export export(int promptTokens) {
    int[] tokens = IntStream.range(0, promptTokens).map(i -> 10 + (i * 7) % 400).toArray();
    tokens[0] = 1; // BOS
    Sequence sequence = reference.allocate(tokens);
    try {
      reference.step(List.of(sequence));
      int first = new Sampler(SamplingParams.greedy(8), reference.info().vocabSize())
          .sample(sequence.logits());
      KvStreamWriter export = new KvStreamWriter(reference.exportKv(sequence));
      List<byte[]> chunks = new ArrayList<>();
      for (int i = 0; i < export.chunkCount(); i++) {
        chunks.add(export.chunk(i));
      }
      return new Export(tokens, first, export.header(), chunks);
    } finally {
      reference.release(sequence);
    }
  }

  private DecodeRequest fakeRequest(String requestId, FakePrefill fake, Export export,
      EventStream stream) {
    // A transfer id of its own, as every lease has: the puller knows its pulls by it.
    KvHandle handle = new KvHandle("fake-p", "127.0.0.1", fake.port(), requestId + "-transfer",
        export.chunks().size(), export.tokens().length, decodeEngine.layout().fingerprint(),
        System.currentTimeMillis() + 30_000, "ZmFrZS1rZXk");
    return new DecodeRequest(requestId, handle, export.firstToken(), 1L, export.tokens().length,
        greedy(8), stream.address, 16);
  }

  // 8 ----------------------------------------------------------------------------------------

  @Test
  void eventsArriveInOrderWithTheEnginesTextAndCreditsGateThem() throws Exception {
    deploy(8);
    int maxTokens = 40;
    OfflineGenerator.Completion expected = expected(PROMPT, SamplingParams.greedy(maxTokens));
    int expectedTokens = completionTokens(expected);
    assertTrue(expectedTokens > 3, "the reference generation is long enough for this test");

    EventStream stream = stream();
    PrefillResult result = prefill("r1", PROMPT, greedy(maxTokens));
    DecodeAccepted accepted = await(decode(decodeRequest("r1", result, greedy(maxTokens), stream,
        2)));
    assertEquals("r1", accepted.requestId());
    assertEquals(D, accepted.decodeInstanceId());
    assertEquals(0, accepted.waiting());

    DecodeEvent e0 = stream.next();
    DecodeEvent e1 = stream.next();
    assertEquals(0, e0.sequence());
    assertEquals(1, e1.sequence());
    assertFalse(e0.isLast());
    assertFalse(e1.isLast());
    assertEquals(result.promptTokens(), e0.promptTokens());

    // The decoder runs to the end without credit (it coalesces instead of waiting) ...
    eventually("the decoder generated every token", Duration.ofSeconds(5),
        () -> decodedTokens() == expectedTokens);
    eventuallyNoBlocksOnD();
    eventuallyNoBlocksOnP();
    // ... but sends nothing beyond its 2 credits: by the time it has sent a later request's
    // first event to the same stream, it has sent nothing more for r1.
    assertEquals(List.of(), sentBeforeABarrier(stream, "barrier1"),
        "no third event without credit");

    credit("r1", 5);
    DecodeEvent e2 = stream.next();
    assertEquals(2, e2.sequence());
    assertTrue(e2.isLast(), "everything left is coalesced into one last event");
    assertNotNull(e2.finishReason());
    assertNull(e2.failure());
    assertEquals(expected.finishReason().wireName(), e2.finishReason());
    assertEquals(List.of(), sentBeforeABarrier(stream, "barrier2"), "nothing after the last event");

    List<DecodeEvent> events = List.of(e0, e1, e2);
    assertEquals(expected.text(), text(events), "text equals the engine alone");
    assertEquals(expectedTokens, e2.completionTokens());
    assertEquals(e2.completionTokens(), events.stream().mapToInt(DecodeEvent::tokens).sum());
    assertTrue(e2.tokens() > 1, "tokens were coalesced: " + e2.tokens());
    assertEquals(result.promptTokens(), e2.promptTokens());
  }

  @Test
  void withEnoughCreditEveryTokenIsItsOwnEvent() throws Exception {
    deploy(8);
    List<DecodeEvent> events = decodeToEnd("r1", PROMPT, 30);
    for (int i = 0; i < events.size(); i++) {
      assertEquals(i, events.get(i).sequence());
    }
    DecodeEvent last = events.get(events.size() - 1);
    assertNotNull(last.finishReason());
    assertEquals(last.completionTokens(), events.stream().mapToInt(DecodeEvent::tokens).sum());
    eventuallyNoBlocksOnD();
    eventuallyNoBlocksOnP();
  }

  // 9 ----------------------------------------------------------------------------------------

  @Test
  void aHandleOfAnotherLayoutIsRefusedAsIncompatibleAndNothingIsAllocated() throws Exception {
    deploy(8);
    EventStream stream = stream();
    PrefillResult result = prefill("r1", PROMPT, greedy(20));
    KvHandle kv = result.kv();
    KvHandle altered = altered(kv, kv.transferId(), kv.fingerprint().replace("/B16", "/B32"));
    DecodeRequest request = decodeRequest("r1", result, altered, greedy(20), stream, 4);

    Exception e = assertThrows(Exception.class, () -> await(decode(request)));
    ReplyException reply = assertInstanceOf(ReplyException.class, e);
    assertEquals(Failure.INCOMPATIBLE_KV, Failure.of(reply));
    assertTrue(reply.getMessage().contains(altered.fingerprint()), reply.getMessage());

    assertEquals(0, dUsed(), "nothing allocated on D");
    assertEquals(0, decode.info().load().running());
    assertEquals(0, decode.info().load().waiting());
    assertTrue(pUsed() > 0, "the lease on P was not touched");

    // The same request id with the true handle is then served on the same stream: its events
    // numbered from 0 and the first one not a failure show that the refused request streamed
    // nothing (see the class comment).
    await(decode(decodeRequest("r1", result, greedy(20), stream, 4)));
    List<DecodeEvent> events = stream.untilLast("r1");
    assertNull(events.get(events.size() - 1).failure());
    eventuallyNoBlocksOnD();
    eventuallyNoBlocksOnP();
  }

  // 10 ---------------------------------------------------------------------------------------

  @Test
  void anUnknownTransferIdIsAcceptedThenFailsAsKvTransfer() throws Exception {
    deploy(8);
    EventStream stream = stream();
    PrefillResult result = prefill("real", PROMPT, greedy(20));
    KvHandle bogus = altered(result.kv(), "bogus-transfer-id", result.kv().fingerprint());
    DecodeRequest request = decodeRequest("bogus", result, bogus, greedy(20), stream, 4);

    DecodeAccepted accepted = await(decode(request));
    assertEquals("bogus", accepted.requestId());
    DecodeEvent last = stream.next();
    assertEquals(0, last.sequence());
    assertTrue(last.isLast());
    assertEquals(Failure.KV_TRANSFER.name(), last.failure());
    assertTrue(last.error().contains("UNKNOWN_TRANSFER"), last.error());
    assertNull(last.finishReason());
    assertEquals(0, dUsed(), "nothing stays allocated on D");
    assertEquals(0, decode.info().load().running(), "the slot is free");

    // The pooled connection that carried the ERROR serves the real transfer next, whose events
    // go to the same stream: nothing of "bogus" came after its last event (see the class comment).
    await(decode(decodeRequest("real", result, greedy(20), stream, 4)));
    List<DecodeEvent> events = stream.untilLast("real");
    assertNull(events.get(events.size() - 1).failure());
    assertEquals(expected(PROMPT, SamplingParams.greedy(20)).text(), text(events));
    eventuallyNoBlocksOnD();
    eventuallyNoBlocksOnP();
  }

  @Test
  void aLeaseCancelledOnPrefillFailsTheDecodeAsKvTransfer() throws Exception {
    deploy(8);
    EventStream stream = stream();
    PrefillResult result = prefill("r1", PROMPT, greedy(20));
    vertx.eventBus().send(Addresses.prefillControl(P),
        new Cancel(null, result.kv().transferId(), "test").toJson());
    eventuallyNoBlocksOnP();

    await(decode(decodeRequest("r1", result, greedy(20), stream, 4)));
    DecodeEvent last = stream.next();
    assertTrue(last.isLast());
    assertEquals(Failure.KV_TRANSFER.name(), last.failure());
    assertTrue(last.error().contains("UNKNOWN_TRANSFER"), last.error());
    assertEquals(0, dUsed());
  }

  // 11 ---------------------------------------------------------------------------------------

  @Test
  void aPrefillInstanceThatIsGoneWhenItsKvIsPulledFailsTheRequestAsKvUnreachable()
      throws Exception {
    deploy(8);
    EventStream stream = stream();
    PrefillResult result = prefill("r1", PROMPT, greedy(20));
    await(vertx.undeploy(prefill.deploymentID())); // its KV server closes with it

    await(decode(decodeRequest("r1", result, greedy(20), stream, 4)));
    DecodeEvent last = stream.next();
    assertEquals(0, last.sequence());
    assertTrue(last.isLast());
    assertEquals(Failure.KV_UNREACHABLE.name(), last.failure(), last.error());
    assertTrue(last.error().contains("cannot connect"), last.error());
    assertEquals(0, dUsed(), "nothing stays allocated on D");
    assertEquals(0, decode.info().load().running(), "the slot is free");
  }

  @Test
  void aPrefillInstanceThatDiesMidTransferFailsTheRequestAsKvUnreachableAndTheHalfImportIsAborted()
      throws Exception {
    deploy(8);
    Export export = export(40);
    assertEquals(3, export.chunks().size());
    FakePrefill fake = await(FakePrefill.start(vertx, (socket, transferId) -> {
      FakePrefill.write(socket, KvFrame.Type.HEADER, export.header());
      FakePrefill.write(socket, KvFrame.Type.CHUNK, export.chunks().get(0));
    }));
    EventStream stream = stream();
    await(decode(fakeRequest("r1", fake, export, stream)));

    NetSocket socket = await(fake.pulled());
    // D allocated the blocks of the whole import on the header
    eventually("D imports into 3 blocks", Duration.ofSeconds(5), () -> dUsed() == 3);

    await(socket.close()); // the prefill instance dies

    // The stream's first event, numbered 0, is its last: nothing came while the transfer was open.
    DecodeEvent last = stream.next();
    assertEquals(0, last.sequence());
    assertTrue(last.isLast());
    assertEquals(Failure.KV_UNREACHABLE.name(), last.failure(), last.error());
    eventuallyNoBlocksOnD();
    assertEquals(0, decode.info().load().running(), "the slot is free");

    // and D goes on serving, on the same stream: nothing came after the last event
    decodeToEnd("next", PROMPT, 20, stream);
    eventuallyNoBlocksOnD();
  }

  /**
   * A pull that gets no answer within the pull timeout means a prefill instance that is gone or
   * cut off (KV_UNREACHABLE: prefilling again elsewhere may help); one that got its header and
   * then stalled, a slow one (TIMEOUT).
   */
  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void aPullThatTimesOutIsUnreachableWhenNothingCameElseATimeout(boolean headerSent)
      throws Exception {
    deploy(1, 500);
    Export export = export(40);
    FakePrefill fake = await(FakePrefill.start(vertx, (socket, transferId) -> {
      if (headerSent) {
        FakePrefill.write(socket, KvFrame.Type.HEADER, export.header());
      }
    }));
    EventStream stream = stream();
    await(decode(fakeRequest("r1", fake, export, stream)));

    DecodeEvent last = stream.next();
    assertTrue(last.isLast());
    assertEquals((headerSent ? Failure.TIMEOUT : Failure.KV_UNREACHABLE).name(), last.failure(),
        last.error());
    eventuallyNoBlocksOnD();
    assertEquals(0, decode.info().load().running(), "the slot is free");
  }

  // 12 ---------------------------------------------------------------------------------------

  @Test
  void aCorruptedChunkFailsTheRequestAndFreesTheBlocks() throws Exception {
    deploy(8);
    Export export = export(40);
    byte[] damaged = export.chunks().get(1).clone();
    damaged[12 + 37] ^= 0x5A; // a payload byte; the chunk CRC is left as it was
    FakePrefill fake = await(FakePrefill.start(vertx, (socket, transferId) -> {
      FakePrefill.write(socket, KvFrame.Type.HEADER, export.header());
      FakePrefill.write(socket, KvFrame.Type.CHUNK, export.chunks().get(0));
      // re-encoded, so the frame CRC is right and only the KV chunk's own CRC can tell
      FakePrefill.write(socket, KvFrame.Type.CHUNK, damaged);
      FakePrefill.write(socket, KvFrame.Type.CHUNK, export.chunks().get(2));
      socket.write(KvFrame.empty(KvFrame.Type.END).encode());
    }));
    EventStream stream = stream();
    await(decode(fakeRequest("r1", fake, export, stream)));

    DecodeEvent last = stream.next();
    assertTrue(last.isLast());
    assertEquals(Failure.KV_TRANSFER.name(), last.failure());
    assertTrue(last.error().contains("CORRUPTED"), last.error());
    eventuallyNoBlocksOnD();
    assertEquals(0, decode.info().load().running(), "the slot is free");
    await(fake.connectionClosed()); // D drops a connection whose stream it cannot trust
    assertFalse(fake.received.contains(KvFrame.Type.RELEASE), "nothing was imported to release");

    // D goes on serving, on the same stream: nothing came after the last event
    decodeToEnd("next", PROMPT, 20, stream);
    eventuallyNoBlocksOnD();
  }

  // 13 ---------------------------------------------------------------------------------------

  @Test
  void cancellingARunningDecodeStopsItsEventsFreesItsBlocksAndItsSlot() throws Exception {
    deploy(1);
    // aidreams decodes a whole context in milliseconds, so a cancel sent on the first event may
    // come too late; the invariants must hold either way, and one of a few attempts must catch
    // the decode mid-way (each attempt misses with a probability of a few per cent).
    boolean cutShort = false;
    for (int attempt = 0; attempt < 5 && !cutShort; attempt++) {
      cutShort = cancelOnTheFirstEvent(attempt);
    }
    assertTrue(cutShort, "no attempt cancelled a decode that was still running");
  }

  /** Returns whether the cancel stopped the decode before its natural end. */
  private boolean cancelOnTheFirstEvent(int attempt) throws Exception {
    String longId = "long" + attempt;
    String nextId = "next" + attempt;
    double tokensBefore = decodedTokens();
    // a decode that runs to the end of the context unless cancelled
    SamplingSpec longRun = greedyIgnoringEos(1_000);
    EventStream stream = stream();
    PrefillResult result = prefill(longId, PROMPT, longRun);
    // every token up to the end of the context, the first one included
    int fullLength = SEQ_LEN + 1 - result.promptTokens();
    await(decode(decodeRequest(longId, result, longRun, stream, 1)));

    // The next request needs the only slot. Its events go to the same stream, one credit at a
    // time: all but its first are sent after the decode instance handled the credits that the
    // test grants it below, so after the cancel and the credit granted to the cancelled request
    // (one sender, one address: in order). See the class comment.
    PrefillResult nextResult = prefill(nextId, PROMPT, greedy(20));
    Future<DecodeAccepted> nextAccepted = decode(decodeRequest(nextId, nextResult, greedy(20),
        stream, 1));

    DecodeEvent first = stream.next();
    assertEquals(longId, first.requestId());
    assertEquals(0, first.sequence());
    assertFalse(first.isLast());
    cancelDecode(longId);
    // no more events for the cancelled request, even when credit is granted
    credit(longId, 100);

    // the slot frees: the next request is admitted and completes, and the stream has nothing
    // of the cancelled request before the next request's last event
    await(nextAccepted);
    List<DecodeEvent> nextEvents = stream.untilLast(nextId);
    assertTrue(nextEvents.size() >= 2, "the next request's last event waited for a credit");
    DecodeEvent nextLast = nextEvents.get(nextEvents.size() - 1);
    assertNull(nextLast.failure(), () -> "the next request failed: " + nextLast.error());
    assertEquals(expected(PROMPT, SamplingParams.greedy(20)).text(), text(nextEvents));
    eventuallyNoBlocksOnD();
    eventuallyNoBlocksOnP();
    assertEquals(0, decode.info().load().running());
    double longTokens = decodedTokens() - tokensBefore - nextLast.completionTokens();
    assertTrue(longTokens >= 1 && longTokens <= fullLength, "tokens of the cancelled decode: "
        + longTokens);
    return longTokens < fullLength;
  }

  @Test
  void cancellingADecodeWhoseKvIsStillBeingPulledFreesEverythingAndStaysSilent()
      throws Exception {
    // A pull timeout far beyond the test's own: only the cancel can end the stalled pull.
    deploy(1, 600_000);
    Export export = export(40);
    // a prefill instance that sends the header and one chunk, then stalls
    FakePrefill fake = await(FakePrefill.start(vertx, (socket, transferId) -> {
      FakePrefill.write(socket, KvFrame.Type.HEADER, export.header());
      FakePrefill.write(socket, KvFrame.Type.CHUNK, export.chunks().get(0));
    }));
    EventStream stream = stream();
    await(decode(fakeRequest("stalled", fake, export, stream)));
    NetSocket socket = await(fake.pulled());
    eventually("D imports into 3 blocks", Duration.ofSeconds(5), () -> dUsed() == 3);

    cancelDecode("stalled");

    // D abandons the pull: it closes the connection, which the fake prefill instance never does.
    await(fake.connectionClosed());
    assertFalse(fake.received.contains(KvFrame.Type.RELEASE), "nothing was imported to release");
    // Then the stalled prefill instance goes away; the cancelled request must stay silent.
    socket.close();
    // The slot frees: a following request completes, its events on the same stream, so the
    // cancelled request sent nothing before them (see the class comment).
    decodeToEnd("next", PROMPT, 20, stream);
    // the half-imported blocks are freed: by the cancel, as the pull could not time out
    eventuallyNoBlocksOnD();
    assertEquals(0, decode.info().load().running());
  }

  // 14 ---------------------------------------------------------------------------------------

  /**
   * Two requests hold both slots (their prefill instance stalls mid-transfer), so the next three
   * wait in the order they came; once the two are cancelled, the three start in turn and
   * complete with the engine's text. The two are held by their stalled pulls, not by their
   * length, so no machine is fast enough to free a slot before the three arrive.
   */
  @Test
  void requestsBeyondTheSlotsWaitInTurnAndCompleteOnceTheSlotsFree() throws Exception {
    // A pull timeout far beyond the test's own: only a cancel ends a stalled pull.
    deploy(2, 600_000);
    Export export = export(40);
    FakePrefill stalling = await(FakePrefill.start(vertx, (socket, transferId) -> {
      FakePrefill.write(socket, KvFrame.Type.HEADER, export.header());
      FakePrefill.write(socket, KvFrame.Type.CHUNK, export.chunks().get(0));
    }));
    List<String> prompts = List.of("In the quiet lab, a", "Once upon a time", "Pixels");
    int maxTokens = 30;
    List<PrefillResult> results = new ArrayList<>();
    List<EventStream> eventStreams = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) {
      results.add(prefill("c" + i, prompts.get(i), greedy(maxTokens)));
      eventStreams.add(stream());
    }
    List<String> held = List.of("held-0", "held-1");
    for (String id : held) {
      assertEquals(0, await(decode(fakeRequest(id, stalling, export, stream()))).waiting(),
          id + " takes a slot");
    }
    List<Future<DecodeAccepted>> accepted = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) {
      accepted.add(decode(decodeRequest("c" + i, results.get(i), greedy(maxTokens),
          eventStreams.get(i), 64)));
    }
    await(Future.all(accepted));
    assertEquals(List.of(1, 2, 3), accepted.stream().map(f -> f.result().waiting()).toList(),
        "places in the queue");
    assertEquals(3, decode.info().load().waiting());

    held.forEach(this::cancelDecode);
    for (int i = 0; i < prompts.size(); i++) {
      List<DecodeEvent> events = eventStreams.get(i).untilLast("c" + i);
      DecodeEvent last = events.get(events.size() - 1);
      assertNull(last.failure(), "request " + i + ": " + last.error());
      assertEquals(expected(prompts.get(i), SamplingParams.greedy(maxTokens)).text(),
          text(events), "request " + i);
      assertEquals(last.completionTokens(), events.stream().mapToInt(DecodeEvent::tokens).sum());
    }
    eventuallyNoBlocksOnD();
    eventuallyNoBlocksOnP();
    assertEquals(0, decode.info().load().running());
    assertEquals(0, decode.info().load().waiting());
  }

  // stopping --------------------------------------------------------------------------------

  /** The states {@code instanceId} announces on the registry, as they come. */
  private BlockingQueue<InstanceInfo.State> announcements(String instanceId) throws Exception {
    BlockingQueue<InstanceInfo.State> states = new LinkedBlockingQueue<>();
    await(vertx.eventBus().<JsonObject>consumer(Addresses.REGISTRY, message -> {
      InstanceInfo info = InstanceInfo.fromJson(message.body());
      if (info.instanceId().equals(instanceId)) {
        states.add(info.state());
      }
    }).completion());
    return states;
  }

  /**
   * Takes announcements until {@code state}, skipping those of earlier states of an instance's
   * life (serving, draining, left); fails on a later one.
   */
  private static void awaitAnnounced(BlockingQueue<InstanceInfo.State> states,
      InstanceInfo.State state) throws InterruptedException {
    InstanceInfo.State announced;
    do {
      announced = states.poll(5, TimeUnit.SECONDS);
      assertNotNull(announced, "no " + state + " announcement within 5 s");
    } while (announced.ordinal() < state.ordinal());
    assertEquals(state, announced);
  }

  /**
   * Deploys a decode instance that drains for up to {@code drainSeconds} when undeployed and
   * starts on it a greedy stream of 60 tokens with {@code credits}.
   */
  private EventStream streamOnADrainingDecode(int drainSeconds, String requestId, int credits)
      throws Exception {
    deploy(8, 8_000, Role.DECODE, drainSeconds);
    EventStream stream = stream();
    PrefillResult result = prefill(requestId, PROMPT, greedy(60));
    await(decode(decodeRequest(requestId, result, greedy(60), stream, credits)));
    return stream;
  }

  private static void assertRefusedAsUnavailable(Future<?> request) {
    Exception e = assertThrows(Exception.class, () -> await(request));
    assertEquals(Failure.UNAVAILABLE, Failure.of(assertInstanceOf(ReplyException.class, e)),
        e.getMessage());
  }

  /**
   * A decode instance stopped mid-stream announces that it drains, refuses new requests as
   * UNAVAILABLE, and finishes the stream (its last event waits for the requester's credit, so the
   * stream cannot end before the test grants it) before it stops and announces that it left.
   */
  @Test
  void aStoppedDecodeInstanceFinishesItsStreamsAndRefusesNewRequests() throws Exception {
    EventStream stream = streamOnADrainingDecode(30, "running", 2);
    BlockingQueue<InstanceInfo.State> states = announcements(D);

    Future<Void> stopped = vertx.undeploy(decode.deploymentID());
    awaitAnnounced(states, InstanceInfo.State.DRAINING);
    PrefillResult late = prefill("late", PROMPT, greedy(10));
    assertRefusedAsUnavailable(decode(decodeRequest("late", late, greedy(10), stream(), 4)));
    assertFalse(stopped.isComplete(), "stopped before its stream ended");

    // the stream, granting credit as its events come
    List<DecodeEvent> events = stream.untilLast("running");
    DecodeEvent last = events.get(events.size() - 1);
    assertNull(last.failure(), () -> "the stream failed: " + last.error());
    assertEquals(expected(PROMPT, SamplingParams.greedy(60)).text(), text(events));
    await(stopped);
    awaitAnnounced(states, InstanceInfo.State.LEFT);
    eventuallyNoBlocksOnD();
    // the refused request's lease is the prefill instance's to end: it was never pulled
    vertx.eventBus().send(Addresses.prefillControl(P),
        new Cancel(null, late.kv().transferId(), "test").toJson());
    eventuallyNoBlocksOnP();
  }

  /**
   * A prefill instance stopped while it holds leased KV refuses new prompts as UNAVAILABLE and
   * goes on serving the KV: it stops once the decode instance has pulled and released it.
   */
  @Test
  void aStoppedPrefillInstanceServesItsLeasedKvUntilItIsPulled() throws Exception {
    deploy(8, 8_000, Role.PREFILL, 30);
    BlockingQueue<InstanceInfo.State> states = announcements(P);
    PrefillResult leased = prefill("leased", PROMPT, greedy(30));

    Future<Void> stopped = vertx.undeploy(prefill.deploymentID());
    awaitAnnounced(states, InstanceInfo.State.DRAINING);
    assertRefusedAsUnavailable(vertx.eventBus().request(Addresses.prefill(P),
        new PrefillRequest("late", PROMPT, new int[0], greedy(10)).toJson()));
    assertFalse(stopped.isComplete(), "stopped while its KV was leased");

    EventStream stream = stream();
    await(decode(decodeRequest("leased", leased, greedy(30), stream, 64)));
    List<DecodeEvent> events = stream.untilLast("leased");
    DecodeEvent last = events.get(events.size() - 1);
    assertNull(last.failure(), () -> "the decode failed: " + last.error());
    assertEquals(expected(PROMPT, SamplingParams.greedy(30)).text(), text(events));
    await(stopped);
    awaitAnnounced(states, InstanceInfo.State.LEFT);
    eventuallyNoBlocksOnP();
    eventuallyNoBlocksOnD();
  }

  /** Work that does not end within the drain timeout is cut: the instance stops anyway. */
  @Test
  void aDrainEndsAtItsTimeout() throws Exception {
    // one credit, never another: the stream cannot end
    EventStream stream = streamOnADrainingDecode(1, "stuck", 1);
    BlockingQueue<InstanceInfo.State> states = announcements(D);
    assertFalse(stream.next().isLast());

    long start = System.nanoTime();
    await(vertx.undeploy(decode.deploymentID()));
    long tookMillis = (System.nanoTime() - start) / 1_000_000;
    assertTrue(tookMillis >= 1000 && tookMillis < 5000, "stopped after " + tookMillis + " ms");
    awaitAnnounced(states, InstanceInfo.State.DRAINING);
    awaitAnnounced(states, InstanceInfo.State.LEFT);
    eventuallyNoBlocksOnD();
  }
}
