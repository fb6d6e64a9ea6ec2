package io.duet.bench;

import io.duet.bench.impl.Latency;
import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Table;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.proxy.routing.DecodeClaim;
import io.duet.proxy.routing.DecodeTarget;
import io.duet.proxy.routing.Routing;
import io.duet.proxy.routing.RoutingOptions;
import io.duet.proxy.routing.RoutingRequest;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The proxy's own time per scheduling decision: {@link Routing} (policy, per-rank cap, queue)
 * over a registry of many decode ranks and prefill instances, with no network and no engine.
 * Timed calls: a decode claim and the release of a slot, with slots free (the claim places the
 * request) and with every rank at its cap (the claim queues the request, the release hands the
 * slot to the first waiting one); a prefill choice. {@code --threads} threads decide at once on
 * one {@code Routing}, as a proxy's event loops do.
 */
@Command(name = "routing", mixinStandardHelpOptions = true,
    description = "Time per routing decision of the proxy (policies, per-rank cap, queue) over "
        + "many decode ranks, in this JVM.")
final class RoutingCommand extends BenchCommand {

  private static final double US = 1e3;
  private static final String MODEL = "bench";
  private static final String FINGERPRINT = "kv-bench";

  @Option(names = "--ranks", description = "decode ranks in the registry (default: ${DEFAULT-VALUE})")
  int ranks = 200;

  @Option(names = "--ranks-per-instance", description = "ranks of each decode instance "
      + "(default: ${DEFAULT-VALUE})")
  int ranksPerInstance = 8;

  @Option(names = "--prefills", description = "prefill instances in the registry (default: "
      + "${DEFAULT-VALUE})")
  int prefills = 18;

  @Option(names = "--decisions", description = "timed decisions of each kind (default: "
      + "${DEFAULT-VALUE})")
  int decisions = 100_000;

  @Option(names = "--warmup", description = "untimed decisions before (default: ${DEFAULT-VALUE})")
  int warmup = 50_000;

  @Option(names = "--waiting", description = "requests in the queue when every rank is at its "
      + "cap (default: ${DEFAULT-VALUE})")
  int waiting = 512;

  @Option(names = "--threads", description = "threads deciding at once (default: ${DEFAULT-VALUE})")
  int threads = 1;

  private record Row(String decision, String policy, String setting, Latency latency) {
  }

  @Override
  public Integer call() throws Exception {
    requirePositive(ranks, "--ranks");
    requirePositive(ranksPerInstance, "--ranks-per-instance");
    requirePositive(prefills, "--prefills");
    requirePositive(decisions, "--decisions");
    requireNotNegative(warmup, "--warmup");
    requireNotNegative(waiting, "--waiting");
    requirePositive(threads, "--threads");
    List<InstanceInfo> registry = registry();
    List<String> decodePolicies = List.of("least-load", "longest-first");
    List<String> prefillPolicies = List.of("least-prompt-tokens", "round-robin",
        "prefix-affinity");
    Progress progress = progress(2 * decodePolicies.size() + prefillPolicies.size());
    List<Row> rows = new ArrayList<>();
    for (String policy : decodePolicies) {
      progress.phase("decode, slots free, " + policy);
      rows.addAll(decode(registry, policy, false));
      progress.phase("decode, every rank at its cap, " + policy);
      rows.addAll(decode(registry, policy, true));
    }
    for (String policy : prefillPolicies) {
      progress.phase("prefill, " + policy);
      rows.add(prefill(registry, policy));
    }
    progress.done();
    report(rows);
    return 0;
  }

  /** {@link #ranks} decode ranks, idle or lightly loaded, and {@link #prefills} prefills. */
  private List<InstanceInfo> registry() {
    Random random = new Random(1);
    List<InstanceInfo> entries = new ArrayList<>();
    for (int p = 0; p < prefills; p++) {
      entries.add(new InstanceInfo(String.format("p%03d", p), Role.PREFILL, 0, 1, "127.0.0.1",
          1, 2, MODEL, FINGERPRINT, "llama2", 30_000,
          new InstanceInfo.Load(random.nextInt(16), 0, random.nextInt(30_000), 0, 0), 0));
    }
    for (int r = 0; r < ranks; r++) {
      entries.add(new InstanceInfo(String.format("d%03d", r / ranksPerInstance), Role.DECODE,
          r % ranksPerInstance, ranksPerInstance, "127.0.0.1", 1, 0, MODEL, FINGERPRINT,
          "llama2", 60, new InstanceInfo.Load(random.nextInt(60), 0, random.nextInt(200_000),
          0, 0), 0));
    }
    return entries;
  }

  /** A request in flight on a decode target, as a backend keeps it. */
  private record Slot(DecodeTarget target, RoutingRequest request) {
  }

  /**
   * Releases a decode slot and claims one, over and over. With slots free, 5 requests a rank
   * stay in flight under a cap of 25 and each claim places its request; at a cap of 1 every
   * rank is full and {@link #waiting} requests wait: each release hands its slot to the first of
   * them, each claim queues one more.
   */
  private List<Row> decode(List<InstanceInfo> registry, String policy, boolean atCap)
      throws Exception {
    int cap = atCap ? 1 : 25;
    Routing routing = Routing.create(new RoutingOptions().setDecodePolicy(policy)
        .setDecodeRankCap(cap).setQueueSize(waiting + threads + 1), new SimpleMeterRegistry());
    ConcurrentLinkedQueue<Slot> inFlight = new ConcurrentLinkedQueue<>();
    int held = atCap ? ranks : 5 * ranks;
    Random sizes = new Random(2);
    for (int i = 0; i < held + (atCap ? waiting : 0); i++) {
      claim(routing, registry, inFlight, request("fill-" + i, sizes));
    }
    List<Latency[]> timings = onThreads(thread -> {
      Latency claims = new Latency();
      Latency releases = new Latency();
      Random random = new Random(10 + thread);
      for (int i = 0; i < warmup + decisions; i++) {
        boolean timed = i >= warmup;
        Slot slot = inFlight.poll();
        long start = System.nanoTime();
        routing.releaseDecode(registry, slot.target(), slot.request());
        long released = System.nanoTime();
        claim(routing, registry, inFlight, request(thread + "-" + i, random));
        long claimed = System.nanoTime();
        if (timed) {
          releases.recordNanos(released - start);
          claims.recordNanos(claimed - released);
        }
      }
      return new Latency[] {claims, releases};
    });
    String setting = atCap ? "every rank at cap 1, " + waiting + " waiting"
        : held + " in flight under cap 25";
    return List.of(
        new Row(atCap ? "decode claim (queues)" : "decode claim (places)", policy, setting,
            merged(timings, 0)),
        new Row(atCap ? "decode release (grants the next)" : "decode release", policy, setting,
            merged(timings, 1)));
  }

  private static void claim(Routing routing, List<InstanceInfo> registry,
      ConcurrentLinkedQueue<Slot> inFlight, RoutingRequest request) {
    DecodeClaim claim = routing.claimDecode(registry, request, FINGERPRINT, Set.of(),
        target -> inFlight.add(new Slot(target, request)));
    if (claim.outcome() == DecodeClaim.Outcome.PLACED) {
      inFlight.add(new Slot(claim.target(), request));
    }
  }

  private static RoutingRequest request(String id, Random random) {
    return new RoutingRequest(id, MODEL, 100 + random.nextInt(4000), 1 + random.nextInt(2000),
        null, List.of());
  }

  private Row prefill(List<InstanceInfo> registry, String policy) throws Exception {
    Routing routing = Routing.create(new RoutingOptions().setPrefillPolicy(policy),
        new SimpleMeterRegistry());
    // 64 system prompts of 2,000 characters, each with a question of its own
    List<String> systemPrompts = new ArrayList<>();
    Random random = new Random(3);
    for (int i = 0; i < 64; i++) {
      StringBuilder text = new StringBuilder();
      while (text.length() < 2000) {
        text.append((char) ('a' + random.nextInt(26)));
      }
      systemPrompts.add(text.toString());
    }
    List<Latency[]> timings = onThreads(thread -> {
      Latency choices = new Latency();
      Random questions = new Random(20 + thread);
      for (int i = 0; i < warmup + decisions; i++) {
        RoutingRequest request = RoutingRequest.ofText(thread + "-" + i, MODEL,
            systemPrompts.get(questions.nextInt(systemPrompts.size())) + " question "
                + questions.nextInt(), 100);
        long start = System.nanoTime();
        routing.choosePrefill(registry, request, Set.of());
        if (i >= warmup) {
          choices.recordNanos(System.nanoTime() - start);
        }
      }
      return new Latency[] {choices};
    });
    return new Row("prefill choice", policy, prefills + " prefill instances",
        merged(timings, 0));
  }

  /** What one thread measures: latencies by kind. */
  @FunctionalInterface
  private interface Timed {
    Latency[] run(int thread) throws Exception;
  }

  private List<Latency[]> onThreads(Timed timed) throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    try {
      List<Future<Latency[]>> runs = new ArrayList<>();
      for (int t = 0; t < threads; t++) {
        int thread = t;
        runs.add(pool.submit(() -> timed.run(thread)));
      }
      List<Latency[]> results = new ArrayList<>();
      for (Future<Latency[]> run : runs) {
        results.add(run.get());
      }
      return results;
    } finally {
      pool.shutdownNow();
    }
  }

  private static Latency merged(List<Latency[]> timings, int kind) {
    Latency all = new Latency();
    timings.forEach(thread -> all.add(thread[kind]));
    return all;
  }

  private void report(List<Row> rows) throws Exception {
    PrintWriter out = out();
    out.printf("routing: %d decode ranks (%d per instance), %d prefill instances, %d timed "
            + "decisions of each kind after %d untimed, %d thread(s) deciding at once%n", ranks,
        ranksPerInstance, prefills, decisions, warmup, threads);
    out.println(machine());
    out.println();
    Table table = new Table(3, "decision", "policy", "setting", "p50 us", "p90 us", "p99 us",
        "max us", "mean us");
    JsonArray json = new JsonArray();
    for (Row row : rows) {
      Latency l = row.latency();
      table.row(row.decision(), row.policy(), row.setting(), Table.num(l.percentile(50, US), 2),
          Table.num(l.percentile(90, US), 2), Table.num(l.percentile(99, US), 2),
          Table.num(l.max(US), 1), Table.num(l.mean(US), 2));
      json.add(new JsonObject().put("decision", row.decision()).put("policy", row.policy())
          .put("setting", row.setting()).put("micros", l.toJson(US)));
    }
    table.print(out);
    writeJson(new JsonObject().put("command", "routing").put("machine", machineJson())
        .put("ranks", ranks).put("ranksPerInstance", ranksPerInstance).put("prefills", prefills)
        .put("decisions", decisions).put("warmup", warmup).put("waiting", waiting)
        .put("threads", threads).put("rows", json));
  }
}
