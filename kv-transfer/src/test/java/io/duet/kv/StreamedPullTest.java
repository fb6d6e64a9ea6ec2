package io.duet.kv;

import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.eventually;
import static io.duet.service.ServiceTests.shared;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.Failure;
import io.duet.contract.KvHandle;
import io.duet.contract.ServiceException;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Generation;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import io.duet.service.ServiceTests.Engines;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.Parameter;
import org.junit.jupiter.params.ParameterizedClass;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * KV pulled while its prefill runs, over real TCP on 127.0.0.1 and by the same-JVM handoff
 * (each test runs on both paths), between two stories260K engines:
 * the prefill engine's KV leaves layer by layer ({@link LeaseTable#leaseWhileComputing}), the
 * real puller imports it, and the stream ends with the first token. The prompt takes three
 * passes of 64 tokens, so its layers become ready out of chunk order. Every way out (success,
 * the prefill failing before the first layer, midway or after the last, the puller giving up
 * midway) leaves no KV block used on either engine.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
@ParameterizedClass(name = "same-JVM handoff {0}")
@ValueSource(booleans = {false, true})
class StreamedPullTest {

  @Parameter
  boolean sameJvm;

  private static final int PROMPT_TOKENS = 150;
  private static final SamplingParams GREEDY = SamplingParams.greedy(12);

  private final Engines engines = new Engines();
  private Vertx vertx;
  private Engine prefill;
  private Engine decode;
  private LeaseTable leases;
  private KvTransferServer server;
  private Context pullerContext;
  private KvPuller puller;

  private static EngineOptions options() {
    return new EngineOptions().modelPath(shared("stories260K.bin")).kvBlocks(64).threads(1)
        .maxBatchTokens(64);
  }

  @BeforeEach
  void start() throws Exception {
    vertx = Vertx.vertx();
    prefill = engines.open(options());
    decode = engines.open(options());
    leases = new LeaseTable(vertx, prefill, 30_000, PullAuth.perLease(), () -> { });
    server = new KvTransferServer(vertx, leases, new SimpleMeterRegistry());
    await(server.listen("127.0.0.1", 0, KvTransferServer.Settings.of(30_000,
        KvChannel.defaults())));
    pullerContext = vertx.getOrCreateContext();
    Promise<KvPuller> made = Promise.promise();
    pullerContext.runOnContext(v -> made.complete(new KvPuller(vertx, decode, 1, 10_000, "d0",
        KvChannel.defaults().withSameJvmHandoff(sameJvm))));
    puller = await(made.future());
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  private static int[] prompt() {
    return IntStream.range(0, PROMPT_TOKENS).map(i -> i == 0 ? 1 : 10 + (i * 7) % 400)
        .toArray();
  }

  private KvHandle handle(String transferId) {
    return new KvHandle("p0", "127.0.0.1", server.actualPort(), transferId,
        (PROMPT_TOKENS + 15) / 16, PROMPT_TOKENS, prefill.layout().fingerprint(), 0,
        leases.pullKey(transferId));
  }

  private Future<KvPuller.Pulled> pull(KvHandle handle) {
    Promise<KvPuller.Pulled> pulled = Promise.promise();
    pullerContext.runOnContext(v -> puller.pull(handle).onComplete(pulled));
    return pulled.future();
  }

  private void assertNoBlockUsed() {
    eventually("no KV block used on either side", Duration.ofSeconds(10),
        () -> prefill.kvStats().usedBlocks() == 0 && decode.kvStats().usedBlocks() == 0
            && !leases.holdsBlocks());
  }

  private void awaitImportStarted() {
    eventually("the decode side began its import", Duration.ofSeconds(10),
        () -> decode.kvStats().usedBlocks() > 0);
  }

  private static Failure failureOf(Future<?> future) {
    ServiceException e = assertThrows(ServiceException.class, () -> await(future));
    return e.failure();
  }

  @Test
  void theKvPulledWhilePrefillRunsEndsWithTheFirstTokenAndDecodesAsOneEngine() throws Exception {
    Generation alone = generateAlone();
    Sequence sequence = prefill.allocate(prompt());
    String transferId = leases.leaseWhileComputing("r1", sequence);
    Future<KvPuller.Pulled> pulled = pull(handle(transferId));
    awaitImportStarted();
    prefill.step(List.of(sequence));
    Sampler sampler = new Sampler(GREEDY, prefill.info().vocabSize());
    int first = new Generation(prefill, sequence, GREEDY, sampler).sampleNext();
    leases.computed(transferId, new FirstToken(first, sampler.state()));

    KvPuller.Pulled result = await(pulled);
    assertEquals(sameJvm ? KvPuller.Path.SAME_JVM : KvPuller.Path.TCP, result.path());
    assertEquals(first, result.first().token());
    assertEquals(sampler.state(), result.first().samplerState());
    Generation continued = new Generation(decode, result.sequence(), GREEDY,
        new Sampler(GREEDY, result.first().samplerState(), decode.info().vocabSize()));
    int token = result.first().token();
    while (continued.accept(token).finish() == null) {
      decode.append(result.sequence(), token);
      decode.step(List.of(result.sequence()));
      token = continued.sampleNext();
    }
    assertArrayEquals(alone.outputTokens(), continued.outputTokens());
    decode.release(result.sequence());
    assertNoBlockUsed();
  }

  private Generation generateAlone() {
    Sequence sequence = decode.allocate(prompt());
    Generation generation = new Generation(decode, sequence, GREEDY,
        new Sampler(GREEDY, decode.info().vocabSize()));
    decode.step(List.of(sequence));
    int token = generation.sampleNext();
    while (generation.accept(token).finish() == null) {
      decode.append(sequence, token);
      decode.step(List.of(sequence));
      token = generation.sampleNext();
    }
    decode.release(sequence);
    // the prefix cache keeps the blocks for reuse; they count as free
    assertEquals(0, decode.kvStats().usedBlocks());
    return generation;
  }

  @Test
  void aPrefillThatFailsBeforeTheFirstLayerFailsThePullAndFreesBothSides() throws Exception {
    assertAFailedPrefillFailsThePull(prefill.allocate(prompt()), () -> { });
  }

  /**
   * The first two blocks are in the prefill engine's prefix cache, so their layers leave at
   * once; the rest would come from the step, which the failure pre-empts.
   */
  @Test
  void aPrefillThatFailsMidwayFailsThePullAndFreesBothSides() throws Exception {
    Sequence earlier = prefill.allocate(java.util.Arrays.copyOf(prompt(), 40));
    prefill.step(List.of(earlier));
    prefill.release(earlier);
    Sequence sequence = prefill.allocate(prompt());
    assertEquals(32, sequence.cachedPrefixTokens());
    assertAFailedPrefillFailsThePull(sequence, () -> { });
  }

  /** Every layer was computed and sent; the first token ended the request (or failed). */
  @Test
  void aPrefillThatFailsAfterTheLastLayerFailsThePullAndFreesBothSides() throws Exception {
    Sequence sequence = prefill.allocate(prompt());
    assertAFailedPrefillFailsThePull(sequence, () -> prefill.step(List.of(sequence)));
  }

  /**
   * Leases {@code sequence} while it is computed, starts its pull, runs {@code beforeFailure}
   * once the import has started, fails the computation: the pull fails and neither side keeps a
   * block.
   */
  private void assertAFailedPrefillFailsThePull(Sequence sequence, Runnable beforeFailure)
      throws Exception {
    String transferId = leases.leaseWhileComputing("r1", sequence);
    Future<KvPuller.Pulled> pulled = pull(handle(transferId));
    awaitImportStarted();
    beforeFailure.run();
    leases.computeFailed(transferId, "prefill failed");
    assertEquals(Failure.KV_TRANSFER, failureOf(pulled));
    assertNoBlockUsed();
  }

  /** The first token ended the request: the pull ends as cancelled, not as a failure. */
  @Test
  void aFirstTokenThatEndsTheRequestEndsThePullAsCancelled() throws Exception {
    Sequence sequence = prefill.allocate(prompt());
    String transferId = leases.leaseWhileComputing("r1", sequence);
    Future<KvPuller.Pulled> pulled = pull(handle(transferId));
    awaitImportStarted();
    prefill.step(List.of(sequence));
    leases.firstTokenEnded(transferId);
    assertEquals(Failure.CANCELLED, failureOf(pulled));
    assertNoBlockUsed();
  }

  /**
   * The decode side gives up while the prefill runs: its import is aborted, the connection
   * closes (or the handoff lets go), the lease ends, and the prefill engine's blocks go once its
   * step is done.
   */
  @Test
  void aPullCancelledMidwayFreesBothSidesOnceThePrefillEnds() throws Exception {
    Sequence sequence = prefill.allocate(prompt());
    String transferId = leases.leaseWhileComputing("r1", sequence);
    KvHandle handle = handle(transferId);
    Future<KvPuller.Pulled> pulled = pull(handle);
    awaitImportStarted();
    pullerContext.runOnContext(v -> puller.cancel(handle));
    assertEquals(Failure.CANCELLED, failureOf(pulled));
    eventually("the lease ended", Duration.ofSeconds(10), () -> leases.size() == 0);
    assertTrue(prefill.kvStats().usedBlocks() > 0, "the step still owns the blocks");
    prefill.step(List.of(sequence));
    leases.computed(transferId, new FirstToken(5, 0));
    assertNoBlockUsed();
  }

  @Test
  void aLeaseComputedBeforeItIsPulledIsServedWholeAndExpiresLikeAnyOther() throws Exception {
    Sequence sequence = prefill.allocate(prompt());
    String transferId = leases.leaseWhileComputing("r1", sequence);
    prefill.step(List.of(sequence));
    leases.computed(transferId, new FirstToken(7, 3));
    assertTrue(leases.expiresAt(transferId) > 0, "the expiry started when the KV was computed");
    KvPuller.Pulled result = await(pull(handle(transferId)));
    assertEquals(new FirstToken(7, 3), result.first());
    assertEquals(PROMPT_TOKENS, result.sequence().computedTokens());
    decode.release(result.sequence());
    assertNoBlockUsed();
  }
}
