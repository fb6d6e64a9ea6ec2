package io.duet.bench;

import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Table;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.ExpertNetwork;
import io.duet.engine.Sampler;
import io.duet.engine.Sequence;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Decode throughput of one engine holding every routed expert against groups of engines that
 * split them (expert parallelism), in one JVM (the all-to-all in memory) or spread over several
 * JVMs on this machine (over TCP), with the time each rank's steps spend in the group's
 * all-to-all. Every rank decodes its own batch of sequences, greedy, the ranks of a group
 * stepping together each on a thread of its own, as a decode instance's ranks do.
 */
@Command(name = "expert-parallel", mixinStandardHelpOptions = true,
    description = "Decode tokens/s of 1 vs N expert-parallel ranks, in one JVM or spread "
        + "over several, and the all-to-all time per step.")
final class ExpertParallelCommand extends BenchCommand {

  @Parameters(index = "0", paramLabel = "MODEL", description = "a checkpoint with routed "
      + "experts (e.g. engine.jar random-deepseek DIR)")
  Path model;

  @Option(names = "--ranks", split = ",", description = "expert-parallel sizes to run "
      + "(default: ${DEFAULT-VALUE})")
  List<Integer> ranks = List.of(1, 4);

  @Option(names = "--batch", description = "sequences each rank decodes (default: "
      + "${DEFAULT-VALUE})")
  int batch = 8;

  @Option(names = "--prompt-tokens", description = "prompt length (default: ${DEFAULT-VALUE})")
  int promptTokens = 32;

  @Option(names = "--steps", description = "measured decode steps (default: ${DEFAULT-VALUE})")
  int steps = 64;

  @Option(names = "--warmup-steps", description = "decode steps before measuring (default: "
      + "${DEFAULT-VALUE})")
  int warmupSteps = 32;

  @Option(names = "--threads", description = "compute threads per rank; 0: the cores divided "
      + "among the ranks, at least 1 (default: ${DEFAULT-VALUE})")
  int threads = 0;

  @Option(names = "--jvms", split = ",", description = "JVMs each expert-parallel group "
      + "spreads over, each holding as many ranks; over 1, the group's all-to-all runs over TCP "
      + "between them, and the other JVMs are started on this machine (default: "
      + "${DEFAULT-VALUE})")
  List<Integer> jvms = List.of(1);

  /** Set in a JVM the bench started: {@code FIRST,COUNT,HOST:PORT;HOST:PORT...}. */
  @Option(names = "--node", hidden = true)
  String node;

  @Override
  public Integer call() throws Exception {
    if (node != null) {
      return runNode();
    }
    Table table = new Table(0, "ranks", "JVMs", "threads/rank", "tokens/s", "step ms",
        "all-to-all ms/step", "all-to-all %");
    JsonArray runs = new JsonArray();
    Progress progress = progress((int) ranks.stream()
        .mapToLong(size -> size == 1 ? 1 : jvms.size()).sum());
    for (int size : ranks) {
      for (int spread : jvms) {
        if (size == 1 && spread > 1) {
          // one engine holding every expert has nothing to spread
          continue;
        }
        if (spread < 1 || size % spread != 0) {
          throw badParameter("--jvms " + spread + " does not divide --ranks " + size);
        }
        progress.phase(size + " rank" + (size == 1 ? "" : "s") + " in " + spread + " JVM"
            + (spread == 1 ? "" : "s"));
        int perRank = threadsPerRank(size);
        Result result = spread == 1 ? runHere(size) : runSpread(size, spread);
        double stepMillis = result.nanos / 1e6 / steps;
        double exchangeMillis = result.exchangeNanos() / 1e6 / steps;
        table.row(size, spread, perRank, Table.num(result.tokensPerSecond(), 1),
            Table.num(stepMillis, 2), Table.num(exchangeMillis, 2),
            Table.num(100 * exchangeMillis / stepMillis, 0));
        runs.add(new JsonObject().put("ranks", size).put("jvms", spread)
            .put("threadsPerRank", perRank).put("tokensPerSecond", result.tokensPerSecond())
            .put("stepMillis", stepMillis).put("allToAllMillisPerStep", exchangeMillis));
      }
    }
    progress.done();
    out().println(model + ": " + batch + " sequences per rank, prompts of " + promptTokens
        + " tokens, " + steps + " decode steps measured after " + warmupSteps);
    table.print(out());
    out().println(machine());
    writeJson(new JsonObject().put("model", model.toString()).put("batch", batch)
        .put("steps", steps).put("runs", runs).put("machine", machineJson()));
    return 0;
  }

  private int threadsPerRank(int size) {
    return threads > 0 ? threads
        : Math.max(1, Runtime.getRuntime().availableProcessors() / size);
  }

  private EngineOptions options(int size) {
    return new EngineOptions().modelPath(model).threads(threadsPerRank(size))
        .expertParallel(size).maxSequences(Math.max(batch, 1)).kvCacheBytes(64L << 20);
  }

  /** A group of {@code size} ranks in this JVM, exchanging in memory. */
  private Result runHere(int size) throws Exception {
    List<Engine> engines = Engine.openRanks(options(size), size);
    try {
      return run(engines, 0);
    } finally {
      engines.forEach(Engine::close);
    }
  }

  /**
   * A group of {@code size} ranks over {@code spread} JVMs: this one holds the first
   * {@code size / spread}, JVMs it starts with this bench's class path the others.
   */
  private Result runSpread(int size, int spread) throws Exception {
    List<InetSocketAddress> addresses = new ArrayList<>();
    for (int i = 0; i < size; i++) {
      try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        addresses.add(new InetSocketAddress("127.0.0.1", free.getLocalPort()));
      }
    }
    int perJvm = size / spread;
    String rankAddresses = addresses.stream().map(a -> a.getHostString() + ":" + a.getPort())
        .collect(Collectors.joining(";"));
    List<Process> others = new ArrayList<>();
    try {
      for (int k = 1; k < spread; k++) {
        others.add(startNode(size, k * perJvm + "," + perJvm + "," + rankAddresses));
      }
      List<Engine> engines = Engine.openRanks(options(size).expertNetwork(
          ExpertNetwork.of(addresses, 0, "127.0.0.1", null)), perJvm);
      Result result;
      try {
        result = run(engines, 0);
      } finally {
        engines.forEach(Engine::close);
      }
      for (Process other : others) {
        result = result.and(Result.fromJson(new JsonObject(new String(
            other.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim())));
        if (other.waitFor() != 0) {
          throw new IllegalStateException("a JVM of the group failed (exit "
              + other.exitValue() + "); its log is above");
        }
      }
      return result;
    } finally {
      for (Process other : others) {
        other.destroyForcibly();
        other.waitFor();
      }
    }
  }

  private Process startNode(int size, String nodeSpec) throws IOException {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
    command.addAll(List.of("-cp", System.getProperty("java.class.path"),
        BenchMain.class.getName(), "expert-parallel", model.toString(), "--ranks",
        String.valueOf(size), "--batch", String.valueOf(batch), "--prompt-tokens",
        String.valueOf(promptTokens), "--steps", String.valueOf(steps), "--warmup-steps",
        String.valueOf(warmupSteps), "--threads", String.valueOf(threadsPerRank(size)),
        "--node", nodeSpec));
    return new ProcessBuilder(command).redirectError(ProcessBuilder.Redirect.INHERIT).start();
  }

  /** In a JVM {@link #runSpread} started: its ranks' figures, as JSON on stdout. */
  private int runNode() throws Exception {
    String[] parts = node.split(",", 3);
    int first = Integer.parseInt(parts[0]);
    int count = Integer.parseInt(parts[1]);
    List<InetSocketAddress> addresses = Arrays.stream(parts[2].split(";")).map(a -> {
      int colon = a.lastIndexOf(':');
      return new InetSocketAddress(a.substring(0, colon), Integer.parseInt(a.substring(colon
          + 1)));
    }).toList();
    int size = ranks.get(0);
    List<Engine> engines = Engine.openRanks(options(size).expertNetwork(
        ExpertNetwork.of(addresses, first, "127.0.0.1", null)), count);
    try {
      out().println(run(engines, first).toJson().encode());
      out().flush();
    } finally {
      engines.forEach(Engine::close);
    }
    return 0;
  }

  /**
   * What ranks did in the measured steps: their tokens, the slowest one's time, and the sum of
   * their all-to-all times over {@code ranks} ranks (the table shows the mean).
   */
  private record Result(long tokens, long nanos, long exchangeNanosSum, int ranks) {
    double tokensPerSecond() {
      return tokens / (nanos / 1e9);
    }

    long exchangeNanos() {
      return exchangeNanosSum / ranks;
    }

    Result and(Result other) {
      return new Result(tokens + other.tokens, Math.max(nanos, other.nanos),
          exchangeNanosSum + other.exchangeNanosSum, ranks + other.ranks);
    }

    JsonObject toJson() {
      return new JsonObject().put("tokens", tokens).put("nanos", nanos)
          .put("exchangeNanosSum", exchangeNanosSum).put("ranks", ranks);
    }

    static Result fromJson(JsonObject json) {
      return new Result(json.getLong("tokens"), json.getLong("nanos"),
          json.getLong("exchangeNanosSum"), json.getInteger("ranks"));
    }
  }

  /** Ranks {@code [first, first + engines.size())}, each decoding on a thread of its own. */
  private Result run(List<Engine> engines, int first) {
    List<CompletableFuture<long[]>> ranks = new ArrayList<>();
    for (int r = 0; r < engines.size(); r++) {
      Engine engine = engines.get(r);
      long seed = first + r;
      ranks.add(CompletableFuture.supplyAsync(() -> decode(engine, seed),
          task -> new Thread(task, "bench-rank").start()));
    }
    long nanos = 0;
    long exchange = 0;
    for (CompletableFuture<long[]> rank : ranks) {
      long[] figures = rank.join();
      nanos = Math.max(nanos, figures[0]);
      exchange += figures[1];
    }
    return new Result((long) engines.size() * batch * steps, nanos, exchange, engines.size());
  }

  /**
   * One rank: prefills its batch, decodes the warm-up steps, then the measured ones; every rank
   * runs the same number of steps, as the ranks of a group must.
   *
   * @return the measured steps' nanoseconds and the all-to-all's share of them
   */
  private long[] decode(Engine engine, long seed) {
    Random random = new Random(seed);
    int vocab = engine.info().vocabSize();
    List<Sequence> sequences = new ArrayList<>();
    for (int i = 0; i < batch; i++) {
      int[] prompt = random.ints(promptTokens, 0, vocab).toArray();
      sequences.add(engine.allocate(prompt));
    }
    try {
      engine.step(sequences);
      long start = 0;
      long exchangeBefore = 0;
      for (int step = 0; step < warmupSteps + steps; step++) {
        if (step == warmupSteps) {
          start = System.nanoTime();
          exchangeBefore = engine.expertExchangeNanos();
        }
        for (Sequence s : sequences) {
          engine.append(s, Sampler.argmax(s.logits()));
        }
        engine.step(sequences);
      }
      return new long[] {System.nanoTime() - start,
          engine.expertExchangeNanos() - exchangeBefore};
    } finally {
      sequences.forEach(engine::release);
    }
  }
}
