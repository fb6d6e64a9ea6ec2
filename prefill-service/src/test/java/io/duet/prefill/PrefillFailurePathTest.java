package io.duet.prefill;

import static io.duet.service.ServiceTests.SEQ_LEN;
import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.eventually;
import static io.duet.service.ServiceTests.warmUpTheKernels;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.kv.KvFrameClient;
import io.duet.kv.KvStreamReader;
import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.Failure;
import io.duet.contract.KvHandle;
import io.duet.contract.PrefillRequest;
import io.duet.contract.PrefillResult;
import io.duet.contract.SamplingSpec;
import io.duet.kv.KvFrame;
import io.duet.engine.Engine;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import io.duet.service.ServiceTests.Engines;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.eventbus.DeliveryOptions;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.ReplyException;
import io.vertx.core.eventbus.ReplyFailure;
import io.vertx.core.json.JsonObject;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.IntSupplier;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The prefill instance on its own, in one JVM on a local Vert.x: requests and cancels over the
 * event bus, the KV transfer server over real TCP on 127.0.0.1, and the engine's block gauge to
 * check that every way a lease ends frees its blocks.
 */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class PrefillFailurePathTest {

  private static final String ID = "p-test";
  private static final String PROMPT = "Once upon a time";
  private static final long LONG_LEASE = 30_000;

  private Vertx vertx;
  private NetClient netClient;
  private final Engines engines = new Engines();
  private Engine engine;
  private PrefillVerticle prefill;

  static void eventuallyEquals(int expected, IntSupplier gauge, String what) {
    eventually(what + " == " + expected + " (last seen " + gauge.getAsInt() + ")",
        Duration.ofSeconds(5), () -> gauge.getAsInt() == expected);
  }

  static SamplingSpec greedy(int maxTokens) {
    return SamplingSpec.greedy(maxTokens);
  }

  @BeforeAll
  static void warmUp() throws Exception {
    warmUpTheKernels();
  }

  @BeforeEach
  void startVertx() {
    vertx = Vertx.vertx();
    netClient = vertx.createNetClient(new NetClientOptions().setConnectTimeout(5_000));
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  private void deploy(long leaseMillis, int maxWaiting, int kvBlocks) throws Exception {
    engine = engines.open(kvBlocks);
    prefill = new PrefillVerticle(engine, new PrefillOptions(ID, "aidreams", "127.0.0.1", 0, 0,
        512, maxWaiting, leaseMillis, 10_000),
        new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    await(vertx.deployVerticle(prefill));
  }

  private int used() {
    return engine.kvStats().usedBlocks();
  }

  private int kvPort() {
    return prefill.info().kvPort();
  }

  private Future<PrefillResult> request(PrefillRequest request) {
    return vertx.eventBus().<JsonObject>request(Addresses.prefill(ID), request.toJson(),
            new DeliveryOptions().setSendTimeout(8_000))
        .map(Message::body).map(PrefillResult::fromJson);
  }

  private PrefillResult prefill(String requestId, String prompt) throws Exception {
    return await(request(new PrefillRequest(requestId, prompt, new int[0], greedy(16))));
  }

  private Future<PrefillResult> prefillTokens(String requestId, int[] tokens) {
    return request(new PrefillRequest(requestId, null, tokens, greedy(16)));
  }

  private ReplyException failureOf(Future<PrefillResult> future) {
    Exception e = assertThrows(Exception.class, () -> await(future));
    return assertInstanceOf(ReplyException.class, e);
  }

  private void cancelTransfer(String transferId) {
    vertx.eventBus().send(Addresses.prefillControl(ID),
        new Cancel(null, transferId, "test").toJson());
  }

  private static int[] tokens(int count) {
    // valid ids of the 512-token vocabulary, none of them BOS/EOS
    return IntStream.range(0, count).map(i -> 10 + (i * 7) % 400).toArray();
  }

  // 1 ----------------------------------------------------------------------------------------

  @Test
  void prefillAnswersFirstTokenPromptCountAndAHandleOfTheEnginesLayout() throws Exception {
    deploy(LONG_LEASE, 64, 64);
    Engine reference = engines.open(64);
    int[] prompt = reference.tokenizer().encode(PROMPT, true);
    Sequence seq = reference.allocate(prompt);
    reference.step(List.of(seq));
    int expectedFirst = new Sampler(SamplingParams.greedy(16), reference.info().vocabSize())
        .sample(seq.logits());
    reference.release(seq);

    long before = System.currentTimeMillis();
    PrefillResult result = prefill("r1", PROMPT);

    assertEquals("r1", result.requestId());
    assertEquals(expectedFirst, result.firstToken(), "first token = the engine's own greedy pick");
    assertEquals(prompt.length, result.promptTokens());
    assertEquals(0, result.cachedPromptTokens(), "nothing was cached in a fresh engine");
    KvHandle kv = result.kv();
    assertEquals(engine.layout().fingerprint(), kv.fingerprint());
    assertEquals(ID, kv.prefillInstanceId());
    assertEquals("127.0.0.1", kv.host());
    assertEquals(kvPort(), kv.port());
    assertEquals(prompt.length, kv.tokenCount());
    assertEquals((prompt.length + 15) / 16, kv.blockCount());
    assertNotNull(kv.transferId());
    assertTrue(kv.transferId().length() >= 16, "transfer ids are unguessable: " + kv.transferId());
    assertTrue(kv.leaseExpiresAtMillis() >= before + LONG_LEASE - 1_000,
        "lease expiry " + kv.leaseExpiresAtMillis() + " is about now + lease");

    assertTrue(used() > 0, "the lease holds blocks");
    assertEquals(kv.blockCount(), used());
    assertEquals(used(), prefill.info().load().kvBlocksUsed(), "the heartbeat shows the same");

    // A second prefill gets a distinct lease
    PrefillResult second = prefill("r2", PROMPT);
    assertNotEquals(kv.transferId(), second.kv().transferId());

    cancelTransfer(kv.transferId());
    cancelTransfer(second.kv().transferId());
    eventuallyEquals(0, this::used, "used blocks after cancelling both leases");
  }

  // 2 ----------------------------------------------------------------------------------------

  @Test
  void anUnpulledLeaseExpiresAndFreesItsBlocks() throws Exception {
    deploy(300, 64, 64);
    long start = System.nanoTime();
    PrefillResult result = prefill("r1", PROMPT);
    assertTrue(result.kv().blockCount() > 0);
    assertTrue(result.kv().leaseExpiresAtMillis() > 0, "the handle names its lease expiry");

    eventuallyEquals(0, this::used, "used blocks after the 300 ms lease expired");
    long elapsedMillis = (System.nanoTime() - start) / 1_000_000;
    assertTrue(elapsedMillis >= 250, "the lease must not end before it expires (" + elapsedMillis
        + " ms)");
    assertEquals(0, prefill.info().load().kvBlocksUsed());

    // and the transfer id is dead
    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, kvPort())) {
      client.send(client.pullFrame(result.kv().transferId(), result.kv().pullKey()));
      assertTrue(client.expect(KvFrame.Type.ERROR).payloadText().startsWith("UNKNOWN_TRANSFER"));
    }
  }

  // 3 ----------------------------------------------------------------------------------------

  @Test
  void cancelByTransferIdFreesTheBlocks() throws Exception {
    deploy(LONG_LEASE, 64, 64);
    PrefillResult kept = prefill("keep", "Hello world, this is a different prompt");
    int keptBlocks = used();
    PrefillResult result = prefill("r1", PROMPT);
    assertTrue(used() > keptBlocks, "the second lease holds blocks too");

    cancelTransfer(result.kv().transferId());
    eventuallyEquals(keptBlocks, this::used, "used blocks after cancelling one lease");

    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, kvPort())) {
      client.send(client.pullFrame(result.kv().transferId(), result.kv().pullKey()));
      assertTrue(client.expect(KvFrame.Type.ERROR).payloadText().startsWith("UNKNOWN_TRANSFER"));
      // the other lease is untouched
      KvFrameClient.Pulled pulled = client.pull(kept.kv().transferId(), kept.kv().pullKey());
      assertEquals(kept.kv().blockCount(), pulled.chunks().size());
    }
    cancelTransfer(kept.kv().transferId());
    eventuallyEquals(0, this::used, "used blocks after cancelling the other lease");
  }

  @Test
  void cancelByRequestIdAfterThePrefillFreesItsLease() throws Exception {
    deploy(LONG_LEASE, 64, 64);
    prefill("r1", PROMPT);
    assertTrue(used() > 0);
    vertx.eventBus().send(Addresses.prefillControl(ID), new Cancel("r1", null, "test").toJson());
    eventuallyEquals(0, this::used, "used blocks after cancelling the request");
  }

  // 4 ----------------------------------------------------------------------------------------

  @Test
  void pullOfAnUnknownTransferGetsAnErrorAndTheConnectionStaysUsable() throws Exception {
    deploy(LONG_LEASE, 64, 64);
    PrefillResult result = prefill("r1", PROMPT);
    Engine receiver = engines.open(64);

    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, kvPort())) {
      client.send(client.pullFrame("no-such-transfer", result.kv().pullKey()));
      String error = client.expect(KvFrame.Type.ERROR).payloadText();
      assertTrue(error.startsWith("UNKNOWN_TRANSFER"), error);

      // the same connection serves a valid pull next
      KvFrameClient.Pulled pulled = client.pull(result.kv().transferId(), result.kv().pullKey());
      assertEquals(result.kv().blockCount(), pulled.chunks().size());
      KvStreamReader kvImport = KvStreamReader.begin(receiver, pulled.header());
      assertEquals(result.promptTokens(), kvImport.tokenCount());
      for (byte[] chunk : pulled.chunks()) {
        kvImport.acceptChunk(ByteBuffer.wrap(chunk));
      }
      Sequence imported = kvImport.finish();
      assertEquals(result.promptTokens(), imported.length());
      receiver.release(imported);

      client.send(KvFrame.text(KvFrame.Type.RELEASE, result.kv().transferId()));
      client.expect(KvFrame.Type.RELEASED);
    }
    assertEquals(0, used());
  }

  // 5 ----------------------------------------------------------------------------------------

  /** The kinds of garbage a confused or hostile peer may send. */
  private static Buffer garbage(String kind) {
    return switch (kind) {
      // a well-formed PULL head and payload with a wrong CRC
      case "bad-crc" -> Buffer.buffer().appendByte((byte) KvFrame.Type.PULL.code()).appendInt(5)
          .appendString("hello").appendInt(0xDEADBEEF);
      // a negative length
      case "bad-length" -> Buffer.buffer().appendByte((byte) 1).appendInt(-7).appendInt(0);
      // a PULL longer than any client frame may be: refused from its head, never buffered
      case "over-the-cap" -> Buffer.buffer().appendByte((byte) KvFrame.Type.PULL.code())
          .appendInt(KvFrame.MAX_CLIENT_PAYLOAD + 1).appendBytes(new byte[1024]);
      // a correct CRC over an unknown frame type
      case "unknown-type" -> {
        Buffer frame = KvFrame.text(KvFrame.Type.PULL, "x").encode();
        frame.setByte(0, (byte) 42);
        Buffer body = frame.getBuffer(0, frame.length() - 4);
        java.util.zip.CRC32C crc = new java.util.zip.CRC32C();
        crc.update(body.getBytes());
        yield body.appendInt((int) crc.getValue());
      }
      // a valid frame that only the server may send
      case "server-frame" -> KvFrame.text(KvFrame.Type.HEADER, "not yours").encode();
      default -> throw new IllegalArgumentException(kind);
    };
  }

  @ParameterizedTest
  @ValueSource(strings = {"bad-crc", "bad-length", "over-the-cap", "unknown-type",
      "server-frame"})
  void garbageClosesThatConnectionOnlyAndTheServerGoesOn(String kind) throws Exception {
    deploy(LONG_LEASE, 64, 64);
    PrefillResult first = prefill("r1", PROMPT);
    PrefillResult second = prefill("r2", "Hello world");

    try (KvFrameClient bystander = KvFrameClient.connect(vertx, netClient, kvPort());
         KvFrameClient bad = KvFrameClient.connect(vertx, netClient, kvPort())) {
      bad.sendRaw(garbage(kind));
      await(bad.closed());

      // a connection that was open before is still served
      KvFrameClient.Pulled pulled = bystander.pull(first.kv().transferId(), first.kv().pullKey());
      assertEquals(first.kv().blockCount(), pulled.chunks().size());
      bystander.send(KvFrame.text(KvFrame.Type.RELEASE, first.kv().transferId()));
      bystander.expect(KvFrame.Type.RELEASED);
    }
    // and so is a new one
    try (KvFrameClient fresh = KvFrameClient.connect(vertx, netClient, kvPort())) {
      KvFrameClient.Pulled pulled = fresh.pull(second.kv().transferId(), second.kv().pullKey());
      assertEquals(second.kv().blockCount(), pulled.chunks().size());
      fresh.send(KvFrame.text(KvFrame.Type.RELEASE, second.kv().transferId()));
      fresh.expect(KvFrame.Type.RELEASED);
    }
    assertEquals(0, used());
  }

  // 6 ----------------------------------------------------------------------------------------

  @ParameterizedTest
  @ValueSource(ints = {SEQ_LEN, SEQ_LEN + 1, 300})
  void aPromptThatFillsTheContextIsRefusedAsContextLength(int length) throws Exception {
    deploy(LONG_LEASE, 64, 64);
    ReplyException e = failureOf(prefillTokens("long", tokens(length)));
    assertEquals(ReplyFailure.RECIPIENT_FAILURE, e.failureType());
    assertEquals(Failure.CONTEXT_LENGTH, Failure.of(e));
    assertTrue(e.getMessage().contains("context"), e.getMessage());
    assertTrue(e.getMessage().contains(String.valueOf(SEQ_LEN)), e.getMessage());
    assertEquals(0, used());
    assertEquals(0, prefill.info().load().waiting(), "a refused prompt is not counted as waiting");
  }

  @Test
  void aPromptOneTokenShortOfTheContextIsServed() throws Exception {
    deploy(LONG_LEASE, 64, 64);
    PrefillResult result = await(prefillTokens("edge", tokens(SEQ_LEN - 1)));
    assertEquals(SEQ_LEN - 1, result.promptTokens());
    cancelTransfer(result.kv().transferId());
    eventuallyEquals(0, this::used, "used blocks after cancel");
  }

  @Test
  void aTokenIdOutsideTheVocabularyIsRefusedAsABadRequestAndTheQueueGoesOn() throws Exception {
    deploy(LONG_LEASE, 64, 64);
    ReplyException e = failureOf(prefillTokens("bad", new int[] {1, 512}));
    assertEquals(Failure.BAD_REQUEST, Failure.of(e));
    assertTrue(e.getMessage().contains("512"), e.getMessage());
    assertEquals(0, prefill.info().load().waiting());

    PrefillResult next = await(prefillTokens("next", tokens(5)));
    assertEquals(5, next.promptTokens());
    cancelTransfer(next.kv().transferId());
    eventuallyEquals(0, this::used, "used blocks after cancel");
  }

  @Test
  void maxWaitingZeroRefusesEverythingAsOverloaded() throws Exception {
    deploy(LONG_LEASE, 0, 64);
    ReplyException e = failureOf(request(new PrefillRequest("r", PROMPT, new int[0], greedy(4))));
    assertEquals(Failure.OVERLOADED, Failure.of(e));
    assertEquals(0, used());
  }

  @Test
  void aFloodBeyondMaxWaitingIsRefusedAsOverloadedAndTheQueuedOneIsServedOnceBlocksFree()
      throws Exception {
    // 4 blocks of 16 tokens: one 60-token lease fills the cache, so the next prompt must queue
    deploy(LONG_LEASE, 1, 4);
    PrefillResult holder = await(prefillTokens("holder", tokens(60)));
    assertEquals(4, used());

    Future<PrefillResult> queued = prefillTokens("queued", tokens(5));
    eventually("the second prompt waits for blocks", Duration.ofSeconds(5),
        () -> prefill.info().load().waiting() == 1);

    List<Future<PrefillResult>> flood = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      flood.add(prefillTokens("flood" + i, tokens(5)));
    }
    for (Future<PrefillResult> f : flood) {
      ReplyException e = failureOf(f);
      assertEquals(Failure.OVERLOADED, Failure.of(e));
    }
    assertFalse(queued.isComplete(), "the queued prompt waits while the cache is full");

    cancelTransfer(holder.kv().transferId());
    PrefillResult served = await(queued);
    assertEquals(5, served.promptTokens());
    cancelTransfer(served.kv().transferId());
    eventuallyEquals(0, this::used, "used blocks after cancelling the last lease");
    assertEquals(0, prefill.info().load().waiting());
  }

  // 7 ----------------------------------------------------------------------------------------

  @Test
  void pullThenReleaseFreesTheBlocksAndTheTransferIdIsDead() throws Exception {
    deploy(LONG_LEASE, 64, 64);
    PrefillResult result = prefill("r1", PROMPT);
    assertTrue(used() > 0);
    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, kvPort())) {
      KvFrameClient.Pulled pulled = client.pull(result.kv().transferId(), result.kv().pullKey());
      assertEquals(result.kv().blockCount(), pulled.chunks().size());
      assertTrue(used() > 0, "a pull alone does not end the lease");

      client.send(KvFrame.text(KvFrame.Type.RELEASE, result.kv().transferId()));
      client.expect(KvFrame.Type.RELEASED);
      // the server frees the blocks before it answers RELEASED
      assertEquals(0, used());

      client.send(client.pullFrame(result.kv().transferId(), result.kv().pullKey()));
      String error = client.expect(KvFrame.Type.ERROR).payloadText();
      assertTrue(error.startsWith("UNKNOWN_TRANSFER"), error);

      // releasing again is refused and changes nothing
      client.send(KvFrame.text(KvFrame.Type.RELEASE, result.kv().transferId()));
      assertTrue(client.expect(KvFrame.Type.ERROR).payloadText().startsWith("UNKNOWN_TRANSFER"));
    }
    assertEquals(0, used());
  }
}
