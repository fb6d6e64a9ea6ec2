package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.ConfigLoader;
import io.duet.cluster.Settings;
import io.duet.deploy.impl.LaunchRecord;
import io.duet.service.ServiceTests;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;

/**
 * A topology run by {@code duet.jar} for an integration test: a work directory of its own under
 * target/, runs of {@code java -jar duet.jar ...} with aidreams260K (or the model it is
 * {@linkplain #serving given}) and the log path in their
 * environment, {@code up} on a block of ports of its own, and the guarantee that every duet.jar
 * run and every instance it recorded is killed at the end whatever happens: on {@link #close},
 * or by a shutdown hook should this JVM stop first.
 */
final class LaunchedTopology implements AutoCloseable {

  /** A finished run of duet.jar. */
  record Run(int exit, String out) {
  }

  private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(240);
  private static final int UP_TIMEOUT_SECONDS = 180;
  /** Blocks of ports tried when one is in use (up refuses a topology whose ports are). */
  private static final int PORT_ATTEMPTS = 5;

  private final String writer;
  private final String cluster;
  private final List<Process> commands = new CopyOnWriteArrayList<>();
  private final Thread killOnExit;
  private final Path work;
  private final Path logs;
  private Path topology;
  private int base;
  private Path model = ServiceTests.shared("aidreams260K.bin");
  private Path tokenizer = ServiceTests.shared("aidreams260K.tok512.bin");

  /**
   * A work directory {@code target/<writer>-*} and a cluster name of its own for the topology
   * the test class {@code writer} writes; nothing runs yet.
   */
  LaunchedTopology(String writer) throws IOException {
    this.writer = writer;
    String name = writer.toLowerCase(Locale.ROOT);
    cluster = "duet-" + name + "-"
        + Long.toHexString(ThreadLocalRandom.current().nextLong() >>> 16);
    work = Files.createTempDirectory(Path.of("target"), name + "-").toAbsolutePath();
    logs = work.resolve("logs");
    killOnExit = new Thread(this::killEverything, name + "-kill");
    Runtime.getRuntime().addShutdownHook(killOnExit);
  }

  /**
   * The head of the test's topology, the same every time: its cluster of its own, that notices
   * a member gone within seconds; aidreams260K served as {@code deepseek}; engines of one thread
   * and a 16 MiB KV cache, so that several fit on 2 cores.
   */
  String smallCluster() {
    return """
        # Written by %s.
        cluster:
          name: %s
          heartbeat-millis: 500
          heartbeat-timeout-millis: 3000
          hazelcast-properties: {hazelcast.wait.seconds.before.join: "0"}
        model: {served-name: deepseek}
        prefill: {threads: 1, kv-cache-mb: 16}
        decode: {threads: 1, kv-cache-mb: 16, max-num-seqs: 8}
        """.formatted(writer, cluster);
  }

  /**
   * {@code duet.jar up} of the topology {@code topologyOn} writes for its first port (it uses
   * {@code ports} ports from there), as {@code fileName} in the work directory; when a port is
   * in use, another block is tried.
   */
  Run up(String fileName, int ports, IntFunction<String> topologyOn) throws Exception {
    Run up = null;
    for (int attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
      // below Linux's ephemeral range, so that no connection opened meanwhile takes one
      base = 20_000 + ThreadLocalRandom.current().nextInt(12_000 - ports);
      topology = Files.writeString(work.resolve(fileName), topologyOn.apply(base));
      up = duet("up", topology.toString(), "--timeout", String.valueOf(UP_TIMEOUT_SECONDS));
      if (up.exit() == 0 || !up.out().contains(" is in use")) {
        return up;
      }
    }
    return up;
  }

  /**
   * Serves {@code model} from now on instead of aidreams260K, with {@code tokenizer} (null: the
   * one the model's architecture finds, e.g. a Hugging Face directory's own).
   */
  LaunchedTopology serving(Path model, Path tokenizer) {
    this.model = model;
    this.tokenizer = tokenizer;
    return this;
  }

  /** The first port of the topology that {@link #up} started. */
  int base() {
    return base;
  }

  /** The topology file {@link #up} started. */
  Path topology() {
    return topology;
  }

  /**
   * Replaces the topology file with {@code yaml} in one step (a process that watches it never
   * reads half of it).
   */
  void rewrite(String yaml) throws IOException {
    Path next = Files.writeString(work.resolve(topology.getFileName() + ".next"), yaml);
    Files.move(next, topology, StandardCopyOption.ATOMIC_MOVE,
        StandardCopyOption.REPLACE_EXISTING);
  }

  /** The log an instance writes (LOG_PATH/INSTANCE.log). */
  Path log(String instance) {
    return logs.resolve(instance + ".log");
  }

  /** What {@code up} recorded it started. */
  LaunchRecord record() {
    return LaunchRecord.read(logs.resolve("launch.json")).orElseThrow(() ->
        new AssertionError("up recorded nothing in " + logs));
  }

  /** Runs {@code java -jar duet.jar ARGS} with the model and the log path in its environment. */
  Run duet(String... args) throws Exception {
    List<String> command = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-jar", repoDir().resolve("deploy/target/duet.jar").toString()));
    command.addAll(List.of(args));
    Path output = Files.createTempFile(work, args[0] + "-", ".out");
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(output.toFile());
    // The topology and these variables are the whole configuration of the instances: no
    // variable of this machine's environment may move them elsewhere.
    isolate(builder.environment());
    builder.environment().put("MODEL_PATH", model.toString());
    if (tokenizer != null) {
      builder.environment().put("TOKENIZER_PATH", tokenizer.toString());
    }
    builder.environment().put("LOG_PATH", logs.toString());
    Process process = builder.start();
    commands.add(process);
    if (!process.waitFor(COMMAND_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
      process.destroyForcibly();
      throw new AssertionError("duet.jar " + String.join(" ", args) + " did not end within "
          + COMMAND_TIMEOUT.toSeconds() + " s:\n" + Files.readString(output));
    }
    return new Run(process.exitValue(), Files.readString(output));
  }

  /**
   * Removes from a child's environment every variable a Duet setting reads (and
   * {@code DUET_CONFIG}): a test's topology and the variables it sets are then the whole
   * configuration of the instances, which no variable of this machine's environment may move.
   */
  static void isolate(Map<String, String> environment) {
    environment.keySet().removeIf(key -> key.equals(ConfigLoader.CONFIG_ENV)
        || Settings.all().stream().anyMatch(setting -> setting.env().equals(Optional.of(key))));
  }

  /** Kills every duet.jar run and every instance it recorded; safe to call twice. */
  @Override
  public void close() {
    killEverything();
    try {
      Runtime.getRuntime().removeShutdownHook(killOnExit);
    } catch (IllegalStateException shuttingDown) {
      // the hook runs anyway
    }
  }

  private void killEverything() {
    commands.forEach(Process::destroyForcibly);
    LaunchRecord.read(logs.resolve("launch.json")).ifPresent(record -> record.running()
        .forEach(process -> process.process().ifPresent(ProcessHandle::destroyForcibly)));
  }

  /** The repository root, where the modules' target/ folders are. */
  private static Path repoDir() {
    Path repo = Path.of(System.getProperty("duet.jars.dir", ".."));
    Path jar = repo.resolve("deploy/target/duet.jar");
    assertTrue(Files.isRegularFile(jar), "missing " + jar + ": run the 'package' phase first");
    return repo.toAbsolutePath().normalize();
  }
}
