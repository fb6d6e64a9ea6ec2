package io.duet.proxy.it;

import static java.nio.charset.StandardCharsets.UTF_8;

import io.duet.cluster.ConfigLoader;
import io.duet.cluster.Settings;
import io.duet.service.ServiceRuntime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.TestWatcher;

/**
 * The child JVMs of an integration test, started from the packaged jars, each writing its output
 * to a log file of its own. Every child is killed with its descendants when the test closes this
 * (normally in its {@code @AfterAll}) and, should the test's JVM be stopped first, by a shutdown
 * hook: no child outlives the test to join a later one's cluster.
 */
final class ChildJvms implements AutoCloseable {

  /** A started JVM and the file its output goes to. */
  record Child(String name, Process process, Path log) {

    boolean isAlive() {
      return process.isAlive();
    }

    /** Fails, naming its log, when it has exited {@code when}. */
    void assertAlive(String when) {
      if (!isAlive()) {
        throw new AssertionError(name + " exited with " + process.exitValue() + " " + when
            + "; see " + log);
      }
    }
  }

  private final String testName;
  private final Path logDir;
  private final List<Child> children = new CopyOnWriteArrayList<>();
  private final Thread killHook;

  /**
   * @param testName prefixes what {@link #dumpLogs} prints
   * @param logDir where the children's logs go (created if missing)
   */
  ChildJvms(String testName, Path logDir) throws IOException {
    this.testName = testName;
    this.logDir = Files.createDirectories(logDir);
    this.killHook = new Thread(this::killAll, testName + "-kill-children");
    Runtime.getRuntime().addShutdownHook(killHook);
  }

  Path logDir() {
    return logDir;
  }

  List<Child> children() {
    return List.copyOf(children);
  }

  /**
   * Starts a Duet service from its jar: the Vector API and the flags Hazelcast asks for are given
   * here, so that the service does not relaunch itself (no grandchild JVM), and no variable of
   * this machine's environment can move it elsewhere: {@code args} are its whole configuration.
   */
  Child startService(String name, Path jar, List<String> args) throws IOException {
    List<String> flags = new ArrayList<>(List.of("--add-modules", "jdk.incubator.vector",
        "-Dduet.relaunch=false"));
    flags.addAll(ServiceRuntime.JVM_FLAGS);
    Path log = logDir.resolve(name + ".log");
    ProcessBuilder builder = command(flags, jar, args).redirectErrorStream(true)
        .redirectOutput(log.toFile());
    builder.environment().keySet().removeIf(key -> key.equals(ConfigLoader.CONFIG_ENV)
        || Settings.all().stream().anyMatch(setting -> setting.env().equals(Optional.of(key))));
    return start(name, builder, log);
  }

  /** Starts {@code builder}, whose output goes to {@code log}, as a child to be killed. */
  Child start(String name, ProcessBuilder builder, Path log) throws IOException {
    Child child = new Child(name, builder.start(), log);
    children.add(child);
    return child;
  }

  /** {@code java FLAGS -jar JAR ARGS}, with this JVM's java. */
  static ProcessBuilder command(List<String> flags, Path jar, List<String> args) {
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.addAll(flags);
    command.add("-jar");
    command.add(jar.toString());
    command.addAll(args);
    return new ProcessBuilder(command);
  }

  /** SIGTERM, as an operator stops a service: it drains, then exits. */
  static void terminate(Child child) {
    child.process().destroy();
  }

  /** SIGKILL, a crash: the child and its descendants die at once; returns when they have. */
  static void kill(Child child) throws Exception {
    child.process().descendants().forEach(ProcessHandle::destroyForcibly);
    child.process().destroyForcibly().onExit().get(30, TimeUnit.SECONDS);
  }

  /**
   * SIGSTOP: the child freezes with its sockets open, as a hung machine or one cut off from the
   * network looks to the others (Linux, as the tests run). {@link #close} still kills it.
   */
  static void freeze(Child child) throws Exception {
    Process stop = new ProcessBuilder("kill", "-STOP", String.valueOf(child.process().pid()))
        .inheritIO().start();
    if (!stop.waitFor(10, TimeUnit.SECONDS) || stop.exitValue() != 0) {
      throw new IllegalStateException("kill -STOP " + child.process().pid() + " failed");
    }
  }

  /** Kills every child and waits for them to exit. */
  @Override
  public void close() throws Exception {
    try {
      killAll();
      for (Child child : children) {
        child.process().onExit().get(30, TimeUnit.SECONDS);
      }
    } finally {
      try {
        Runtime.getRuntime().removeShutdownHook(killHook);
      } catch (IllegalStateException shuttingDown) {
        // the hook runs anyway
      }
    }
  }

  private void killAll() {
    for (Child child : children) {
      child.process().descendants().forEach(ProcessHandle::destroyForcibly);
      child.process().destroyForcibly();
    }
  }

  /** Fails, naming it and its log, when a child has exited {@code when}. */
  void assertAllAlive(String when) {
    children.forEach(child -> child.assertAlive(when));
  }

  /**
   * For a test class's {@code @RegisterExtension}: prints the children's logs when a test
   * fails, those of {@code jvms} as it is then.
   */
  static TestWatcher dumpingLogsOnFailure(Supplier<ChildJvms> jvms) {
    return new TestWatcher() {
      @Override
      public void testFailed(ExtensionContext context, Throwable cause) {
        jvms.get().dumpLogs("test " + context.getDisplayName() + " failed: " + cause);
      }
    };
  }

  /** Prints {@code reason} and the last lines of every child's log. */
  void dumpLogs(String reason) {
    StringBuilder out = new StringBuilder("\n[" + testName + "] " + reason
        + "\n[" + testName + "] last lines of each service's log:\n");
    for (Child child : children) {
      out.append("----- ").append(child.name()).append(" (").append(child.log()).append(", ")
          .append(child.process().isAlive() ? "running" : "exited with "
              + child.process().exitValue()).append(") -----\n");
      try {
        List<String> lines = new String(Files.readAllBytes(child.log()), UTF_8).lines().toList();
        for (String line : lines.subList(Math.max(0, lines.size() - 80), lines.size())) {
          out.append(line).append('\n');
        }
      } catch (IOException e) {
        out.append("(cannot read: ").append(e).append(")\n");
      }
    }
    System.out.println(out);
  }
}
