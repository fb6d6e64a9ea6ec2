package io.duet.engine.deepseek;

import io.duet.engine.Engine;
import io.duet.engine.ExpertNetwork;
import java.io.BufferedReader;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

/**
 * A JVM holding some ranks of an expert-parallel decode instance, for the tests that spread an
 * instance over two JVMs: the child's main, and how the test starts it and reads what it
 * decoded. The child opens its ranks of the tiny model in a directory, then either decodes as
 * {@link ExpertParallelTest#decodeInLockstep} and writes every step's logits to a file
 * ({@code decode}), or prints {@value #READY} once connected and waits to be killed
 * ({@code idle}).
 */
final class ExpertRankProcess {

  static final String READY = "ranks open";

  private ExpertRankProcess() {
  }

  /** {@code DIR HOST:PORT,... FIRST COUNT EP TIMEOUT_MS decode|idle [OUT]}. */
  public static void main(String[] args) throws Exception {
    Path dir = Path.of(args[0]);
    List<InetSocketAddress> addresses = Arrays.stream(args[1].split(",")).map(a -> {
      String[] hostPort = a.split(":");
      return new InetSocketAddress(hostPort[0], Integer.parseInt(hostPort[1]));
    }).toList();
    int first = Integer.parseInt(args[2]);
    int count = Integer.parseInt(args[3]);
    int ep = Integer.parseInt(args[4]);
    List<Engine> engines = open(dir, addresses, first, count, ep,
        Duration.ofMillis(Long.parseLong(args[5])));
    try {
      if (args[6].equals("idle")) {
        System.out.println(READY);
        System.out.flush();
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        return;
      }
      List<List<float[][]>> decoded = decode(engines, first, addresses.size());
      try (DataOutputStream out = new DataOutputStream(Files.newOutputStream(Path.of(args[7])))) {
        for (List<float[][]> rank : decoded) {
          out.writeInt(rank.size());
          for (float[][] prompt : rank) {
            for (float[] logits : prompt) {
              out.writeInt(logits.length);
              for (float f : logits) {
                out.writeInt(Float.floatToRawIntBits(f));
              }
            }
          }
        }
      }
    } finally {
      engines.forEach(Engine::close);
    }
  }

  static List<Engine> open(Path dir, List<InetSocketAddress> addresses, int first, int count,
      int ep, Duration timeout) throws IOException {
    return Engine.openRanks(DeepSeekV3Test.options(dir).expertParallel(ep).expertNetwork(
        ExpertNetwork.of(addresses, first, "127.0.0.1", "test-secret")
            .withExchangeTimeout(timeout)), count);
  }

  /**
   * Ranks {@code [first, first + engines.size())} of {@code ranks} decode as
   * {@link ExpertParallelTest#decodeInLockstep}, each on a thread of its own.
   */
  static List<List<float[][]>> decode(List<Engine> engines, int first, int ranks) {
    List<CompletableFuture<List<float[][]>>> results = new ArrayList<>();
    for (int i = 0; i < engines.size(); i++) {
      Engine engine = engines.get(i);
      int rank = first + i;
      results.add(CompletableFuture.supplyAsync(
          () -> ExpertParallelTest.decodeInLockstep(engine, rank, ranks),
          task -> new Thread(task, "rank-" + rank).start()));
    }
    return results.stream().map(CompletableFuture::join).toList();
  }

  /** Starts the child JVM with this JVM's class path and module flags. */
  static Process start(Path dir, List<InetSocketAddress> addresses, int first, int count,
      int ep, long timeoutMillis, String mode, Path out) throws IOException {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    ManagementFactory.getRuntimeMXBean().getInputArguments().stream()
        .filter(a -> a.startsWith("--add-") || a.startsWith("-Xss"))
        .forEach(command::add);
    command.addAll(List.of("-cp", System.getProperty("java.class.path"),
        ExpertRankProcess.class.getName(), dir.toString(),
        addresses.stream().map(a -> a.getHostString() + ":" + a.getPort())
            .collect(Collectors.joining(",")),
        String.valueOf(first), String.valueOf(count), String.valueOf(ep),
        String.valueOf(timeoutMillis), mode, String.valueOf(out)));
    return new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.PIPE).start();
  }

  /** Kills the child and waits for it to be gone. */
  static void kill(Process child) throws InterruptedException {
    child.destroyForcibly();
    child.waitFor(30, TimeUnit.SECONDS);
  }

  /** What a {@code decode} child wrote: per rank, per prompt, every step's logits. */
  static List<List<float[][]>> read(Path out, int ranks) throws IOException {
    List<List<float[][]>> decoded = new ArrayList<>();
    try (DataInputStream in = new DataInputStream(Files.newInputStream(out))) {
      for (int r = 0; r < ranks; r++) {
        int prompts = in.readInt();
        List<float[][]> rank = new ArrayList<>();
        for (int p = 0; p < prompts; p++) {
          float[][] steps = new float[ExpertParallelTest.STEPS][];
          for (int s = 0; s < steps.length; s++) {
            steps[s] = new float[in.readInt()];
            for (int i = 0; i < steps[s].length; i++) {
              steps[s][i] = Float.intBitsToFloat(in.readInt());
            }
          }
          rank.add(steps);
        }
        decoded.add(rank);
      }
    }
    return decoded;
  }
}
