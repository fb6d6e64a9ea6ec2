package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.ConfigLoader;
import io.duet.cluster.Settings;
import io.duet.service.ServiceRuntime;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The packaged {@code proxy-service.jar} running as a child JVM, as a user starts it: the proxy
 * with its embedded prefill and decode instances, serving aidreams260K on a free loopback port,
 * in a Hazelcast cluster of its own (its own name and port range, so that no other test's JVM
 * joins it). {@link #close()} kills it with its descendants, as does a shutdown hook should this
 * JVM be interrupted first.
 */
final class ProxyProcess implements AutoCloseable {

  static final String MODEL = "aidreams";
  /** The context of aidreams260K. */
  static final int CONTEXT = 128;
  private static final Pattern READY = Pattern.compile(
      "Duet proxy \\S+ ready on http://127\\.0\\.0\\.1:(\\d+)/v1");
  private static final Duration READY_TIMEOUT = Duration.ofSeconds(90);

  private final Process process;
  private final Path log;
  private final Thread killHook;
  private final int port;

  private ProxyProcess(Process process, Path log, Thread killHook, int port) {
    this.process = process;
    this.log = log;
    this.killHook = killHook;
    this.port = port;
  }

  /**
   * Starts the proxy and waits until it serves.
   *
   * @param workDir where its configuration and its log go
   * @param maxBodyBytes {@code proxy.max-body-bytes}
   */
  static ProxyProcess start(Path workDir, int maxBodyBytes) throws Exception {
    return start(workDir, maxBodyBytes, noRelaunch(), uniqueClusterName(), randomClusterPort());
  }

  /**
   * Starts the proxy as {@link #start(Path, int)} does but with no cluster name given, as
   * {@code java -jar proxy-service.jar} is started on its own, its Hazelcast ports from
   * {@code clusterPort} on.
   */
  static ProxyProcess startUnnamed(Path workDir, int clusterPort) throws Exception {
    return start(workDir, 1 << 20, noRelaunch(), null, clusterPort);
  }

  /**
   * Starts the proxy exactly as a user does, {@code java -jar proxy-service.jar --config FILE}:
   * the launcher JVM relaunches the service in a child JVM of its own.
   */
  static ProxyProcess startAsUsersDo(Path workDir) throws Exception {
    return start(workDir, 1 << 20, List.of(), uniqueClusterName(), randomClusterPort());
  }

  /** The Vector API given here: no relaunch, so no grandchild JVM to lose. */
  private static List<String> noRelaunch() {
    List<String> flags = new ArrayList<>(List.of("--add-modules", "jdk.incubator.vector",
        "-Dduet.relaunch=false"));
    flags.addAll(ServiceRuntime.JVM_FLAGS);
    return flags;
  }

  private static String uniqueClusterName() {
    return String.format("duet-http-it-%x", ThreadLocalRandom.current().nextLong() >>> 16);
  }

  /** The first of 20 Hazelcast ports that no other test picks, most likely. */
  static int randomClusterPort() {
    return 20_000 + ThreadLocalRandom.current().nextInt(10_000);
  }

  /** @param clusterName null to give none */
  private static ProxyProcess start(Path workDir, int maxBodyBytes, List<String> jvmFlags,
      String clusterName, int clusterPort) throws Exception {
    Path repo = repoDir();
    Path models = repo.resolve("../shared/models").toAbsolutePath().normalize();
    Path config = workDir.resolve("proxy.yaml");
    Files.writeString(config, String.format("""
        cluster:
        %s  port: %d
          port-count: 20
          members: ["127.0.0.1:%d"]
        model:
          path: %s
          tokenizer: %s
          served-name: %s
        proxy:
          port: 0
          http-instances: 2
          max-body-bytes: %d
        prefill:
          threads: 1
          kv-cache-mb: 16
        decode:
          threads: 1
          kv-cache-mb: 16
        """, clusterName == null ? "" : "  name: " + clusterName + "\n", clusterPort,
        clusterPort, models.resolve("aidreams260K.bin"), models.resolve("aidreams260K.tok512.bin"),
        MODEL, maxBodyBytes));
    Path log = workDir.resolve("proxy.log");
    List<String> command = new ArrayList<>(List.of(
        Path.of(System.getProperty("java.home"), "bin", "java").toString()));
    command.addAll(jvmFlags);
    command.addAll(List.of("-jar", repo.resolve("proxy-service/target/proxy-service.jar")
        .toString(), "--config", config.toString()));
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(log.toFile());
    // The file is the whole configuration: no variable of this machine's environment counts.
    builder.environment().keySet().removeIf(key -> key.equals(ConfigLoader.CONFIG_ENV)
        || Settings.all().stream().anyMatch(setting -> setting.env().equals(Optional.of(key))));
    Process process = builder.start();
    Thread killHook = new Thread(() -> kill(process), "proxy-process-kill");
    Runtime.getRuntime().addShutdownHook(killHook);
    long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
    while (System.nanoTime() < deadline && process.isAlive()) {
      Matcher ready = READY.matcher(Files.readString(log, StandardCharsets.ISO_8859_1));
      if (ready.find()) {
        return new ProxyProcess(process, log, killHook, Integer.parseInt(ready.group(1)));
      }
      process.waitFor(100, TimeUnit.MILLISECONDS);
    }
    kill(process);
    throw new AssertionError("the proxy did not get ready within " + READY_TIMEOUT
        + "; its log:\n" + tail(log));
  }

  int port() {
    return port;
  }

  String baseUrl() {
    return "http://127.0.0.1:" + port + "/v1";
  }

  boolean isAlive() {
    return process.isAlive();
  }

  /** The {@code java -jar} process started (a launcher, when the service relaunched itself). */
  Process process() {
    return process;
  }

  /** The proxy's log so far. */
  String log() throws IOException {
    return Files.readString(log, StandardCharsets.ISO_8859_1);
  }

  /** The last lines of the log, for a failure message. */
  String logTail() {
    return tail(log);
  }

  private static String tail(Path log) {
    try {
      List<String> lines = Files.readAllLines(log, StandardCharsets.ISO_8859_1);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 60), lines.size()));
    } catch (IOException e) {
      return "(cannot read " + log + ": " + e + ")";
    }
  }

  @Override
  public void close() throws Exception {
    kill(process);
    process.onExit().get(30, TimeUnit.SECONDS);
    Runtime.getRuntime().removeShutdownHook(killHook);
  }

  private static void kill(Process process) {
    process.descendants().forEach(ProcessHandle::destroyForcibly);
    process.destroyForcibly();
  }

  /** The repository root, where the modules' target/ folders are. */
  static Path repoDir() throws Exception {
    String configured = System.getProperty("duet.jars.dir");
    Path repo = configured != null && !configured.isBlank() ? Path.of(configured)
        : targetDir().getParent().getParent();
    assertTrue(Files.isRegularFile(repo.resolve("proxy-service/target/proxy-service.jar")),
        "no proxy-service/target/proxy-service.jar under " + repo + ": run 'package' first");
    return repo.toAbsolutePath().normalize();
  }

  /** This module's target/: the parent of the test classes directory. */
  static Path targetDir() throws Exception {
    return Path.of(ProxyProcess.class.getProtectionDomain().getCodeSource().getLocation()
        .toURI()).getParent();
  }
}
