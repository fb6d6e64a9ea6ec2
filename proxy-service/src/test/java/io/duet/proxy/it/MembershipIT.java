package io.duet.proxy.it;

import static io.duet.service.StatusPages.DECODE_RUNNING;
import static io.duet.service.StatusPages.DECODE_TOKENS;
import static io.duet.service.StatusPages.KV_BLOCKS_USED;
import static io.duet.service.StatusPages.KV_LEASES;
import static io.duet.service.StatusPages.PREFILL_PROMPTS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.service.ServiceTests;
import io.duet.service.StatusPages;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Live membership with real JVMs from the packaged jars: prefill and decode instances join a
 * running cluster and leave it (SIGTERM, SIGKILL) while requests run, and no request notices
 * but those a crash cuts short.
 *
 * <p>The cluster is a proxy, prefill instance {@code p-1} and decode instance {@code d-1}, all
 * with the default heartbeat and drain settings, serving the long-context model of
 * {@link LongContextModel}: its generation to the end of the context takes seconds, so a stream
 * of it outlives a process, and holding {@code d-1}'s one batch slot ({@code max-num-seqs: 1})
 * with such a stream makes every later request wait in its queue, its KV leased on its prefill
 * instance and not pulled, for as long as the test needs. Each test starts the instance it stops
 * (its id sorts before the others', so that it comes first among equally idle instances) and
 * ends with the cluster as it found it: idle, no KV held.
 *
 * <p>The figures each test measures (start, join, leave, drain) are printed.
 */
class MembershipIT {

  private static final String MODEL = "longctx";
  private static final Duration READY_TIMEOUT = Duration.ofSeconds(150);
  private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(60);
  private static final Duration IDLE_TIMEOUT = Duration.ofSeconds(10);
  /** What the issue promises: a new instance gets traffic within this of being ready... */
  private static final Duration JOIN_LIMIT = Duration.ofSeconds(2);
  /** ... and the clients of a crashed one hear of it within this. */
  private static final Duration LEAVE_LIMIT = Duration.ofSeconds(3);
  private static final int HAZELCAST_PORT_COUNT = 20;
  /**
   * Tokens nearly to the end of the context, leaving the prompt room (a max_tokens past the
   * context is refused): a stream that holds its slot for seconds.
   */
  private static final int TO_THE_END = LongContextModel.SEQ_LEN - 64;
  /**
   * The streams a decode instance runs when it is stopped: long enough to be mid-stream (a
   * token costs a millisecond or more through the proxy), short enough to end soon after.
   */
  private static final int STREAM_TOKENS = 1_000;
  private static final Pattern WAITING = StatusPages.metricPattern("duet_decode_waiting", "");
  private static final Pattern IN_FLIGHT =
      StatusPages.metricPattern("duet_requests_in_flight", "");

  /** A prefill or decode JVM of the cluster: its id and status port. */
  private record Instance(String id, ChildJvms.Child child, int statusPort) {
  }

  private static ChildJvms jvms;
  private static HttpClient http;
  private static StatusPages pages;
  private static Engine reference;
  private static final Set<Integer> PORTS_TAKEN = new HashSet<>();
  private static List<String> serviceArgs;
  private static int proxyPort;
  private static Instance p1;
  private static Instance d1;
  private static final Figures FIGURES = new Figures("MembershipIT");
  /** The instances the running test started, stopped after it whatever happened. */
  private final List<Instance> started = new ArrayList<>();

  @RegisterExtension
  static final TestWatcher DUMP_LOGS_ON_FAILURE = ChildJvms.dumpingLogsOnFailure(() -> jvms);

  // ------------------------------------------------------------------------------ lifecycle

  @BeforeAll
  static void startCluster() throws Exception {
    Path repo = ItPaths.repoDir();
    Path tokenizer = ItPaths.sharedModel(repo, "aidreams260K.tok512.bin");
    Path target = ItPaths.targetDir();
    jvms = new ChildJvms("MembershipIT", target.resolve("it-logs/membership"));
    Path work = Files.createTempDirectory(target, "membership-it-");
    Path model = LongContextModel.write(work.resolve("longctx.bin"));
    reference = Engine.open(new EngineOptions().modelPath(model).tokenizerPath(tokenizer)
        .kvBlocks(300).threads(1));
    http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
        .connectTimeout(Duration.ofSeconds(5)).build();
    pages = new StatusPages(http);

    String cluster = "duet-membership-it-"
        + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 16);
    int hazelcastPort = ItPaths.freePortRange(HAZELCAST_PORT_COUNT + 1, PORTS_TAKEN);
    proxyPort = ItPaths.freePortRange(1, PORTS_TAKEN);
    Path topology = work.resolve("membership-it.yaml");
    Files.writeString(topology, """
        # Written by MembershipIT: a cluster of its own on loopback, small engines, the default
        # heartbeat, failure detection and drain settings.
        cluster:
          name: %s
          host: 127.0.0.1
          port: %d
          port-count: %d
          members: [127.0.0.1]
        model:
          served-name: %s
        proxy:
          port: %d
          http-instances: 2
          embedded: false
        prefill:
          kv-cache-mb: 32
          threads: 1
        decode:
          kv-cache-mb: 32
          threads: 1
        """.formatted(cluster, hazelcastPort, HAZELCAST_PORT_COUNT, MODEL, proxyPort));
    serviceArgs = List.of("--config", topology.toString(), "--model", model.toString(),
        "--tokenizer", tokenizer.toString());

    long start = System.nanoTime();
    try {
      jvms.startService("proxy", ItPaths.jar(repo, "proxy-service"), serviceArgs);
      p1 = startInstance("p-1", "prefill");
      d1 = startInstance("d-1", "decode", "decode.max-num-seqs=1");
      awaitModelServed();
    } catch (Throwable e) {
      jvms.dumpLogs("the cluster did not start: " + e);
      throw e;
    }
    figure("the proxy, p-1 and d-1 started together and served the model in %d ms", start);
  }

  @AfterAll
  static void stopCluster() throws Exception {
    try {
      if (jvms != null) {
        jvms.close();
      }
    } finally {
      if (reference != null) {
        reference.close();
      }
      FIGURES.print();
    }
  }

  /** Whatever ran before, a test starts on an idle cluster. */
  @BeforeEach
  void clusterIsIdle() {
    awaitNoKvHeld();
    await("the proxy to have no request in flight",
        () -> pages.metric(proxyPort, IN_FLIGHT) == 0, IDLE_TIMEOUT);
  }

  /** The instances a test started do not outlive it, however it ended. */
  @AfterEach
  void stopStartedInstances() throws Exception {
    for (Instance instance : started) {
      ChildJvms.kill(instance.child());
    }
  }

  // ------------------------------------------------------------------------------ tests

  /**
   * A prefill instance started while requests flow gets some of them within 2 s of being
   * ready. Stopped with SIGTERM, it takes no new request but keeps serving the KV it leased:
   * the request it prefilled waits in d-1's queue, is pulled from it while it drains, and
   * completes, as does one sent during the drain; then it exits.
   */
  @Test
  void aPrefillInstanceGetsTrafficWithinTwoSecondsOfJoiningAndDrainsOnSigterm()
      throws Exception {
    Instance joining;
    // Requests flow before it is ready, so that what is measured is the proxy noticing it.
    try (RequestLoop load = new RequestLoop()) {
      long launched = System.nanoTime();
      joining = startTestInstance("p-0-joining", "prefill");
      long ready = awaitReady(joining);
      long prefilled = awaitWithin("the joining prefill instance to prefill a prompt",
          () -> pages.metric(joining.statusPort(), PREFILL_PROMPTS) >= 1, READY_TIMEOUT);
      figure("a prefill instance started in %d ms (launch to ready)", launched, ready);
      figure("a prefill instance got traffic %d ms after it was ready", ready, prefilled);
      assertTrue(prefilled - ready <= JOIN_LIMIT.toNanos(), "traffic came "
          + (prefilled - ready) / 1_000_000 + " ms after the instance was ready");
      load.assertEveryAnswerRight();
    }

    try (SseStream holder = holdTheDecodeSlot()) {
      List<SseStream> queued = queueUntilLeasedOn(joining);
      double prefilledThere = pages.metric(joining.statusPort(), PREFILL_PROMPTS);
      double prefilledOnP1 = pages.metric(p1.statusPort(), PREFILL_PROMPTS);
      long stopped = System.nanoTime();
      ChildJvms.terminate(joining.child());
      awaitWithin("the stopped prefill instance to drain",
          () -> state(joining).equals("draining"), REQUEST_TIMEOUT);

      SseStream during = SseStream.open(proxyPort, request("Hello world", 20));
      queued.add(during);
      await("the request sent during the drain to wait in d-1's queue",
          () -> pages.metric(d1.statusPort(), WAITING) == queued.size(), REQUEST_TIMEOUT);
      assertEquals(prefilledOnP1 + 1, pages.metric(p1.statusPort(), PREFILL_PROMPTS),
          "the request sent during the drain was prefilled on p-1");
      assertEquals(prefilledThere, pages.metric(joining.statusPort(), PREFILL_PROMPTS),
          "the draining instance prefilled nothing more");
      assertTrue(joining.child().isAlive(), "it drains while its KV is leased");

      holder.close(); // the client leaves: d-1 frees its slot and pulls the queued requests
      assertEveryCompletedRight(queued);
      assertEquals(prefilledOnP1 + 1, pages.metric(p1.statusPort(), PREFILL_PROMPTS),
          "the KV leased on the draining instance was pulled from it, not prefilled again");
      joining.child().process().onExit().get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      figure("a prefill instance drained and exited %d ms after SIGTERM (its leased KV pulled "
          + "once d-1 had a free slot)", stopped);
    }
    awaitNoKvHeld();
  }

  /**
   * A prefill instance killed (SIGKILL) after it answered, its KV not yet pulled: the decode
   * instance cannot reach it, the prompt is prefilled again on p-1, and the client gets the
   * whole answer, only later.
   */
  @Test
  void aPrefillInstanceKilledBeforeItsKvIsPulledCostsARePrefillNotAnError() throws Exception {
    Instance doomed = startTestInstance("p-0-killed", "prefill");
    awaitTraffic(doomed, PREFILL_PROMPTS);
    try (SseStream holder = holdTheDecodeSlot()) {
      List<SseStream> queued = queueUntilLeasedOn(doomed);
      double prefilledOnP1 = pages.metric(p1.statusPort(), PREFILL_PROMPTS);
      ChildJvms.kill(doomed.child());

      holder.close();
      assertEveryCompletedRight(queued);
      assertEquals(prefilledOnP1 + 1, pages.metric(p1.statusPort(), PREFILL_PROMPTS),
          "the request whose KV was lost was prefilled again on p-1");
    }
    awaitNoKvHeld();
  }

  /** How a decode instance dies in the middle of its streams. */
  enum Death {
    /**
     * SIGKILL: a crash. On one machine its ports refuse connections at once, so Hazelcast soon
     * sees the member gone.
     */
    KILLED,
    /**
     * SIGSTOP: it freezes with its connections open, as a machine that hangs or is cut off from
     * the network: only its missing heartbeats tell.
     */
    FROZEN
  }

  /**
   * A decode instance that dies mid-stream: each of its streams ends with an error event within
   * 3 s, and the stream on d-1 goes on to its end.
   */
  @ParameterizedTest
  @EnumSource(Death.class)
  void aDecodeInstanceThatDiesMidStreamFailsItsStreamsWithinThreeSecondsAndOnlyThose(Death death)
      throws Exception {
    Instance doomed = startTestInstance("d-0-" + death.name().toLowerCase(Locale.ROOT), "decode");
    awaitTraffic(doomed, DECODE_TOKENS);
    List<SseStream> streams = streamsOnBoth(doomed);
    int onDoomed = (int) pages.metric(doomed.statusPort(), DECODE_RUNNING);

    long died = System.nanoTime();
    if (death == Death.KILLED) {
      ChildJvms.kill(doomed.child());
    } else {
      ChildJvms.freeze(doomed.child());
    }
    List<SseStream> failed = new ArrayList<>();
    for (SseStream stream : streams) {
      stream.ended().get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      if (stream.error().isPresent()) {
        failed.add(stream);
        long heard = stream.error().get().arrivedNanos() - died;
        figure("a client of a decode instance " + death.name().toLowerCase(Locale.ROOT)
            + " mid-stream got its error event %d ms after it died", died,
            stream.error().get().arrivedNanos());
        assertTrue(heard <= LEAVE_LIMIT.toNanos(), "the error came " + heard / 1_000_000
            + " ms after the instance died");
      } else {
        assertCompletedRight(stream);
      }
    }
    assertEquals(onDoomed, failed.size(), "the streams that failed are those of the killed "
        + "instance");
    awaitNoKvHeld();
  }

  /**
   * A decode instance stopped with SIGTERM mid-stream takes no new request and lets its
   * streams run to their end before it exits.
   */
  @Test
  void aDecodeInstanceStoppedWithSigtermLetsItsStreamsFinish() throws Exception {
    Instance stopping = startTestInstance("d-0-stopped", "decode");
    awaitTraffic(stopping, DECODE_TOKENS);
    List<SseStream> streams = streamsOnBoth(stopping);

    long stopped = System.nanoTime();
    ChildJvms.terminate(stopping.child());
    awaitWithin("the stopped decode instance to drain",
        () -> state(stopping).equals("draining"), REQUEST_TIMEOUT);
    streams.add(SseStream.open(proxyPort, request("Hello world", 20)));

    assertEveryCompletedRight(streams);
    stopping.child().process().onExit().get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
    figure("a decode instance drained and exited %d ms after SIGTERM (streams of "
        + STREAM_TOKENS + " tokens running)", stopped);
    awaitNoKvHeld();
  }

  // ------------------------------------------------------------------------------ instances

  /**
   * Starts a prefill or decode JVM of the cluster with the given id, a status port of its own
   * and {@code settings} ({@code key=value}) on top of the topology.
   */
  private static Instance startInstance(String id, String role, String... settings)
      throws Exception {
    int statusPort = ItPaths.freePortRange(1, PORTS_TAKEN);
    List<String> args = new ArrayList<>(serviceArgs);
    args.addAll(List.of("--instance-id", id, "--set", role + ".http-port=" + statusPort));
    for (String setting : settings) {
      args.addAll(List.of("--set", setting));
    }
    Path jar = ItPaths.jar(ItPaths.repoDir(), role + "-service");
    return new Instance(id, jvms.startService(id, jar, args), statusPort);
  }

  private Instance startTestInstance(String id, String role) throws Exception {
    Instance instance = startInstance(id, role);
    started.add(instance);
    return instance;
  }

  /** Waits for the instance's status endpoint to answer; returns when it first did. */
  private static long awaitReady(Instance instance) {
    return awaitWithin(instance.id() + " to be ready", () -> {
      instance.child().assertAlive("during start-up");
      return pages.tryGet(instance.statusPort(), "/health")
          .map(answer -> answer.statusCode() == 200).orElse(false);
    }, READY_TIMEOUT);
  }

  /**
   * Waits for {@code instance} to be ready and then for the proxy to send it work: short
   * requests, one at a time, until its {@code counter} moves.
   */
  private static void awaitTraffic(Instance instance, Pattern counter) throws Exception {
    awaitReady(instance);
    try (RequestLoop load = new RequestLoop()) {
      await(instance.id() + " to get traffic",
          () -> pages.metric(instance.statusPort(), counter) > 0, REQUEST_TIMEOUT);
      load.assertEveryAnswerRight();
    }
  }

  /** The state {@code instance} reports on its status endpoint: serving, draining. */
  private static String state(Instance instance) {
    return new JsonObject(pages.get(instance.statusPort(), "/health")).getJsonObject("instance")
        .getString("state");
  }

  private static void awaitModelServed() {
    await("the proxy to serve " + MODEL, () -> {
      jvms.assertAllAlive("during start-up");
      return pages.servedModels(proxyPort).map(models -> models.contains(MODEL)).orElse(false);
    }, READY_TIMEOUT);
  }

  // ------------------------------------------------------------------------------ requests

  /** A greedy request that ignores the end of sequence: it generates {@code maxTokens}. */
  private static JsonObject request(String prompt, int maxTokens) {
    return new JsonObject().put("model", MODEL).put("prompt", prompt).put("temperature", 0)
        .put("max_tokens", maxTokens).put("ignore_eos", true);
  }

  private static String expectedText(JsonObject request) {
    return ReferenceTexts.of(reference, request);
  }

  /**
   * A stream that takes d-1's only slot until it is closed: every request d-1 gets meanwhile
   * waits in its queue, its KV leased and not pulled.
   */
  private static SseStream holdTheDecodeSlot() throws Exception {
    SseStream holder = SseStream.open(proxyPort, request("Once upon a time", TO_THE_END));
    await("the holding stream to run on d-1",
        () -> pages.metric(d1.statusPort(), DECODE_RUNNING) == 1 && !holder.events().isEmpty(),
        REQUEST_TIMEOUT);
    return holder;
  }

  /**
   * Sends requests, one after the other, until one of them is prefilled by {@code prefill}: each
   * waits in d-1's queue with its KV leased where it was prefilled. Several may be needed: among
   * equally idle prefill instances the first in registry order is chosen, but a heartbeat taken
   * while an instance was prefilling shows it busy until the next one.
   */
  private static List<SseStream> queueUntilLeasedOn(Instance prefill) throws Exception {
    List<SseStream> queued = new ArrayList<>();
    List<String> prompts = List.of("Pixels", "The robot", "A dream of", "Whispers",
        "The network", "Silicon", "Memory", "Stars and");
    for (String prompt : prompts) {
      queued.add(SseStream.open(proxyPort, request(prompt, 20)));
      await("the request to wait in d-1's queue",
          () -> pages.metric(d1.statusPort(), WAITING) == queued.size(), REQUEST_TIMEOUT);
      if (pages.metric(prefill.statusPort(), KV_LEASES) > 0) {
        return queued;
      }
    }
    return fail("none of " + prompts.size() + " requests was prefilled by " + prefill.id());
  }

  /**
   * Opens streams of {@value #STREAM_TOKENS} tokens, one after the other, until {@code other}
   * and d-1 each run at least one. Least-load spreads them over both, but by heartbeats up to a
   * period old, so how many it takes is not known in advance.
   */
  private static List<SseStream> streamsOnBoth(Instance other) throws Exception {
    List<SseStream> streams = new ArrayList<>();
    List<String> prompts = List.of("Once upon a time", "Pixels", "The robot", "A dream of",
        "Whispers", "The network");
    for (String prompt : prompts) {
      streams.add(SseStream.open(proxyPort, request(prompt, STREAM_TOKENS)));
      await("the stream to be taken by a decode instance",
          () -> pages.metric(d1.statusPort(), DECODE_RUNNING)
              + pages.metric(d1.statusPort(), WAITING)
              + pages.metric(other.statusPort(), DECODE_RUNNING) == streams.size(),
          REQUEST_TIMEOUT);
      if (pages.metric(d1.statusPort(), DECODE_RUNNING) == 1
          && pages.metric(other.statusPort(), DECODE_RUNNING) >= 1) {
        return streams;
      }
    }
    return fail("no " + prompts.size() + " streams ran on both d-1 and " + other.id());
  }

  private static void assertEveryCompletedRight(List<SseStream> streams) throws Exception {
    for (SseStream stream : streams) {
      stream.ended().get(REQUEST_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      assertCompletedRight(stream);
    }
  }

  private static void assertCompletedRight(SseStream stream) {
    assertTrue(stream.completed(), stream::describe);
    assertEquals(expectedText(stream.request()), stream.text(), stream::describe);
  }

  /**
   * Short requests sent one after the other on a thread of their own until closed, each checked
   * against the engine alone.
   */
  private static final class RequestLoop implements AutoCloseable {
    private final AtomicBoolean stop = new AtomicBoolean();
    private final List<String> wrong = new CopyOnWriteArrayList<>();
    private final Thread thread = new Thread(this::run, "membership-it-requests");
    private final JsonObject request = request("Once upon a time", 8);
    private final String expected = expectedText(request);
    private volatile int answered;

    RequestLoop() {
      thread.setDaemon(true);
      thread.start();
    }

    private void run() {
      while (!stop.get()) {
        try {
          HttpResponse<String> response = http.send(HttpRequest.newBuilder(StatusPages.uri(
                  proxyPort, "/v1/completions")).timeout(REQUEST_TIMEOUT)
              .header("Content-Type", "application/json")
              .POST(HttpRequest.BodyPublishers.ofString(request.encode())).build(),
              HttpResponse.BodyHandlers.ofString());
          String text = response.statusCode() == 200 ? new JsonObject(response.body())
              .getJsonArray("choices").getJsonObject(0).getString("text") : null;
          if (!expected.equals(text)) {
            wrong.add(response.statusCode() + " " + response.body());
          }
          answered++;
        } catch (IOException e) {
          wrong.add(e.toString());
        } catch (InterruptedException e) {
          return;
        }
      }
    }

    /** Stops the loop: every request it sent got the engine's text. */
    void assertEveryAnswerRight() throws InterruptedException {
      close();
      assertEquals(List.of(), wrong, "of " + answered + " requests");
      assertTrue(answered > 0, "no request was answered");
    }

    @Override
    public void close() throws InterruptedException {
      stop.set(true);
      thread.join(REQUEST_TIMEOUT.toMillis());
    }
  }

  // ------------------------------------------------------------------------------ waiting

  private static void awaitNoKvHeld() {
    for (Instance instance : List.of(p1, d1)) {
      await(instance.id() + " to hold no KV block",
          () -> pages.metric(instance.statusPort(), KV_BLOCKS_USED) == 0, IDLE_TIMEOUT);
    }
    await("p-1 to hold no KV lease", () -> pages.metric(p1.statusPort(), KV_LEASES) == 0,
        IDLE_TIMEOUT);
  }

  private static void await(String what, BooleanSupplier condition, Duration timeout) {
    Waits.until(what, condition, timeout);
  }

  private static long awaitWithin(String what, BooleanSupplier condition, Duration timeout) {
    return Waits.until(what, condition, timeout);
  }

  private static void figure(String format, long since) {
    FIGURES.millisSince(format, since);
  }

  private static void figure(String format, long since, long until) {
    FIGURES.millis(format, since, until);
  }
}
