package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.service.StatusPages;
import io.vertx.core.json.JsonObject;
import java.net.SocketException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.extension.TestWatcher;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Any single member of a 3-JVM cluster (a proxy, a prefill and a decode instance, from one
 * topology file, which gives every member every member's address) restarted, the seed included:
 * once it is up again, the cluster serves again within 10 s, and it never forms a cluster of its
 * own that the proxy cannot see. Meanwhile every request is answered at once: a completion, or
 * an error saying that nothing serves the model; none hangs.
 *
 * <p>{@code p0} starts first, so that it is the oldest member, Hazelcast's master, and the only
 * member whose address the others needed before this change; it is restarted first.
 */
@Timeout(value = 5, unit = TimeUnit.MINUTES)
class SeedRestartIT {

  private static final String MODEL = "aidreams";
  private static final Duration READY_TIMEOUT = Duration.ofSeconds(150);
  private static final Duration EXIT_TIMEOUT = Duration.ofSeconds(60);
  /** What the issue promises: serving again within this of the member being up again. */
  private static final Duration SERVING_LIMIT = Duration.ofSeconds(10);
  /** An answer that takes longer is a hang (a first request to a new JVM on a busy machine). */
  private static final Duration ANSWER_LIMIT = Duration.ofSeconds(20);
  /** How long the client waits before it tries a refused connection again, as clients do. */
  private static final Duration RETRY_PAUSE = Duration.ofMillis(50);
  /**
   * What a proxy answers while no prefill or decode instance serves the model: 503 with
   * Retry-After, never 404 for the model it is configured to serve.
   */
  private static final Set<Integer> NOTHING_SERVES = Set.of(503);
  private static final JsonObject REQUEST = new JsonObject().put("model", MODEL)
      .put("prompt", "Once upon a time").put("temperature", 0).put("max_tokens", 8)
      .put("ignore_eos", true);
  private static final Figures FIGURES = new Figures("SeedRestartIT");

  private static ChildJvms jvms;
  private static StatusPages pages;
  private static TopologyCluster cluster;
  private static String expected;

  @RegisterExtension
  static final TestWatcher DUMP_LOGS_ON_FAILURE = ChildJvms.dumpingLogsOnFailure(() -> jvms);

  @BeforeAll
  static void startCluster() throws Exception {
    Path repo = ItPaths.repoDir();
    Path model = ItPaths.sharedModel(repo, "aidreams260K.bin");
    Path tokenizer = ItPaths.sharedModel(repo, "aidreams260K.tok512.bin");
    Path target = ItPaths.targetDir();
    jvms = new ChildJvms("SeedRestartIT", target.resolve("it-logs/seed-restart"));
    try (Engine reference = Engine.open(new EngineOptions().modelPath(model)
        .tokenizerPath(tokenizer).kvBlocks(64).threads(1))) {
      expected = ReferenceTexts.of(reference, REQUEST);
    }
    pages = new StatusPages();
    cluster = new TopologyCluster(jvms, Files.createTempDirectory(target, "seed-restart-it-"),
        List.of("p0", "d0", "c0"), MODEL,
        List.of("--model", model.toString(), "--tokenizer", tokenizer.toString()), "");

    long start = System.nanoTime();
    for (String name : List.of("p0", "d0", "c0")) {
      awaitUp(cluster.start(name));
    }
    Waits.until("c0 to serve " + MODEL, () -> servedModels().contains(MODEL), READY_TIMEOUT);
    FIGURES.millisSince("p0, d0 and c0 started one after the other and served in %d ms", start);
  }

  @AfterAll
  static void stopCluster() throws Exception {
    if (jvms != null) {
      jvms.close();
    }
    FIGURES.print();
  }

  /**
   * Stops {@code name} with SIGTERM and starts it again while a client sends requests one after
   * the other: the cluster serves again within 10 s of the member being up, every answer before
   * that is prompt, and every one after it a completion.
   */
  @ParameterizedTest
  @ValueSource(strings = {"p0", "d0", "c0"})
  void aRestartedMemberServesAgainWithinTenSecondsOfBeingUp(String name) throws Exception {
    TopologyCluster.Instance instance = cluster.get(name);
    try (RequestLoop client = new RequestLoop()) {
      Waits.until("a completion before the restart",
          () -> client.firstCompletionSentAfter(0).isPresent(), READY_TIMEOUT);
      long stopped = System.nanoTime();
      ChildJvms.terminate(instance.child());
      instance.child().process().onExit().get(EXIT_TIMEOUT.toSeconds(), TimeUnit.SECONDS);
      long launched = System.nanoTime();
      cluster.start(name);
      long up = awaitUp(instance);
      long served = Waits.until("a completion after " + name + " was up again",
          () -> client.firstCompletionSentAfter(up).isPresent(), READY_TIMEOUT);
      long answered = client.firstCompletionSentAfter(up).orElseThrow();
      FIGURES.millis(name + " restarted: up %d ms after its launch", launched, up);
      FIGURES.millis(name + " restarted: serving %d ms after it was up", up, answered);
      FIGURES.millis(name + " restarted: serving %d ms after its launch", launched, answered);
      assertTrue(answered - up <= SERVING_LIMIT.toNanos(), "the first completion came "
          + (answered - up) / 1_000_000 + " ms after " + name + " was up");

      Waits.until("three more answers", () -> client.answersSentAfter(served) >= 3,
          READY_TIMEOUT);
      client.close();
      client.assertPromptAndRight(stopped, name.equals("c0") ? up : stopped, served);
    }
  }

  private static long awaitUp(TopologyCluster.Instance instance) {
    return cluster.awaitUp(instance, READY_TIMEOUT);
  }

  private static Set<String> servedModels() {
    return pages.servedModels(cluster.get("c0").port()).orElse(Set.of());
  }

  /** A request's fate: when it was sent and answered, and how. */
  private record Answer(long sentNanos, long answeredNanos, String outcome) {

    static final String COMPLETED = "completed";
    static final String REFUSED = "connection refused";

    boolean completed() {
      return outcome.equals(COMPLETED);
    }
  }

  /**
   * Streamed completions sent one after the other to c0 on a thread of their own until closed,
   * each on a connection of its own, each waited for {@link #ANSWER_LIMIT} at most.
   */
  private static final class RequestLoop implements AutoCloseable {
    private final AtomicBoolean stop = new AtomicBoolean();
    private final List<Answer> answers = new CopyOnWriteArrayList<>();
    private final Thread thread = new Thread(this::run, "seed-restart-client");

    RequestLoop() {
      thread.setDaemon(true);
      thread.start();
    }

    private void run() {
      while (!stop.get()) {
        long sent = System.nanoTime();
        String outcome = send();
        answers.add(new Answer(sent, System.nanoTime(), outcome));
        if (outcome.equals(Answer.REFUSED)) {
          LockSupport.parkNanos(RETRY_PAUSE.toNanos());
        }
      }
    }

    private String send() {
      SseStream stream;
      try {
        stream = SseStream.open(cluster.get("c0").port(), REQUEST);
      } catch (SocketException e) {
        // Refused, or closed by a stopping proxy while the request was written (nothing of it
        // was read): a client sends it again, as after a refused connection.
        return Answer.REFUSED;
      } catch (Exception e) {
        return e.toString();
      }
      try (stream) {
        stream.ended().get(ANSWER_LIMIT.toMillis(), TimeUnit.MILLISECONDS);
        if (stream.status() == 0) {
          return Answer.REFUSED; // closed unanswered by a stopping proxy (docs/reliability.md)
        }
        if (stream.status() == 200) {
          return stream.completed() && stream.text().equals(expected) ? Answer.COMPLETED
              : "a wrong completion: " + stream.describe();
        }
        return "HTTP " + stream.status() + " " + stream.body();
      } catch (TimeoutException e) {
        return "no answer within " + ANSWER_LIMIT.toMillis() + " ms: " + stream.describe();
      } catch (Exception e) {
        return e.toString();
      }
    }

    /** When the first completed request sent after {@code since} was answered. */
    Optional<Long> firstCompletionSentAfter(long since) {
      return answers.stream().filter(a -> a.sentNanos() > since && a.completed())
          .map(Answer::answeredNanos).findFirst();
    }

    long answersSentAfter(long since) {
      return answers.stream().filter(a -> a.sentNanos() > since).count();
    }

    /**
     * Every request was answered, and right: a completion, or while a member was away (answered
     * after {@code stopped}, sent before {@code served}) an error saying that nothing serves the
     * model; a refused connection only while the proxy itself was away (until {@code proxyUp}).
     */
    void assertPromptAndRight(long stopped, long proxyUp, long served) {
      List<String> wrong = new ArrayList<>();
      for (Answer answer : answers) {
        boolean away = answer.answeredNanos() >= stopped && answer.sentNanos() < served;
        boolean right = answer.completed()
            || away && NOTHING_SERVES.stream().anyMatch(status ->
                answer.outcome().startsWith("HTTP " + status + " "))
            || answer.outcome().equals(Answer.REFUSED) && answer.sentNanos() >= stopped
                && answer.sentNanos() < proxyUp;
        if (!right) {
          wrong.add(answer.outcome());
        }
      }
      assertEquals(List.of(), wrong, "of " + answers.size() + " requests");
    }

    @Override
    public void close() throws InterruptedException {
      stop.set(true);
      thread.join(ANSWER_LIMIT.toMillis() * 2);
    }
  }
}
