package io.duet.engine.launch;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Gives {@code java -jar} the Vector API without flags the user must remember. The incubator
 * module {@code jdk.incubator.vector} can only be added when a JVM starts and a jar manifest
 * cannot ask for it, so a main method that finds it missing starts its own JVM again with
 * {@code --add-modules jdk.incubator.vector} (keeping every other JVM option), relays the exit
 * code and forwards termination to the child. The child also gets {@link #UNCHECKED_LOADS_FLAG}
 * for the kernels' faster weight loads, and {@link #HUGE_PAGE_TUNABLE} (unless the environment
 * sets {@code GLIBC_TUNABLES} already) so that weights copied off the heap can sit on huge pages.
 * This is the one place that adds JVM flags.
 *
 * <p>The two JVMs live and die together. A SIGTERM (or SIGINT) to the launcher reaches the child
 * through the launcher's shutdown hook, and the launcher waits for the child to finish (a
 * service drains first) before it exits with the child's code. A launcher that dies without
 * running its hooks (SIGKILL, a crash) cannot tell the child, so the child watches it: given
 * {@value #PARENT_PID_PROPERTY}, it checks every {@value #PARENT_CHECK_MILLIS} ms that the
 * launcher is alive and, once it is not, halts at once, as if killed with it; otherwise it would
 * keep serving as an orphan and hold its ports against a restart.
 *
 * <p>For application entry points only: it may end the process.
 */
public final class VectorLauncher {

  /** Set to {@code false} to stay in the current JVM (scalar kernels unless the module is there). */
  public static final String RELAUNCH_PROPERTY = "duet.relaunch";
  private static final String MODULE = "jdk.incubator.vector";
  /** Lets the kernels load weights without a bounds check per load (see the kernels' log line). */
  public static final String UNCHECKED_LOADS_FLAG =
      "--add-exports=java.base/jdk.internal.vm.vector=ALL-UNNAMED";

  /**
   * Asks glibc to put its large allocations, {@code ByteBuffer.allocateDirect} among them, on
   * transparent huge pages (in the kernel's {@code madvise} mode they are not otherwise).
   */
  public static final String HUGE_PAGE_TUNABLE = "glibc.malloc.hugetlb=1";
  private static final String TUNABLES_VARIABLE = "GLIBC_TUNABLES";
  /** Set on a relaunched JVM to its launcher's pid, which it then watches. */
  public static final String PARENT_PID_PROPERTY = "duet.parent-pid";
  /** How often a relaunched JVM checks that its launcher lives: well within 2 s of its death. */
  static final int PARENT_CHECK_MILLIS = 100;
  /** The exit code of a relaunched JVM whose launcher died: 128 + SIGKILL, as the launcher's. */
  static final int ORPHAN_EXIT_CODE = 137;

  private VectorLauncher() {
  }

  /**
   * Returns when this JVM already has the Vector API (or relaunching is switched off or
   * impossible); otherwise runs {@code mainClass} in a child JVM that has it and exits with the
   * child's exit code.
   */
  public static void ensureVectorApi(Class<?> mainClass, String[] args) {
    ensureVectorApi(mainClass, args, List.of());
  }

  /**
   * As {@link #ensureVectorApi(Class, String[])}; a relaunched JVM also gets
   * {@code extraJvmFlags} (what the application's libraries want, e.g. module opens).
   */
  public static void ensureVectorApi(Class<?> mainClass, String[] args,
      List<String> extraJvmFlags) {
    if (ModuleLayer.boot().findModule(MODULE).isPresent()
        || "false".equalsIgnoreCase(System.getProperty(RELAUNCH_PROPERTY))) {
      watchParent();
      return;
    }
    List<String> command = childCommand(mainClass, args, extraJvmFlags);
    if (command == null) {
      return;
    }
    try {
      ProcessBuilder builder = new ProcessBuilder(command).inheritIO();
      addHugePageTunable(builder.environment());
      Process child = builder.start();
      // Forwards SIGTERM and SIGINT, then waits for the child however long its drain takes: a
      // launcher that gave up waiting would, by exiting, make the child halt mid-drain.
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        if (child.isAlive()) {
          child.destroy();
          try {
            child.waitFor();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
        }
      }, "duet-relaunch-forward"));
      int exit = child.waitFor();
      Runtime.getRuntime().halt(exit);
    } catch (IOException e) {
      System.err.println("[duet] could not start a JVM with " + MODULE + " (" + e.getMessage()
          + "); continuing with scalar kernels");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      Runtime.getRuntime().halt(130);
    }
  }

  /**
   * In a relaunched JVM (one given {@value #PARENT_PID_PROPERTY}): starts a daemon thread that
   * halts this JVM as soon as its launcher is gone. Pid reuse cannot fool it: a process handle
   * knows its process's start time.
   */
  private static void watchParent() {
    String parentPid = System.getProperty(PARENT_PID_PROPERTY);
    if (parentPid == null) {
      return;
    }
    ProcessHandle parent = ProcessHandle.of(Long.parseLong(parentPid)).orElse(null);
    Thread watch = new Thread(() -> {
      try {
        while (parent != null && parent.isAlive()) {
          Thread.sleep(PARENT_CHECK_MILLIS);
        }
      } catch (InterruptedException e) {
        return;
      }
      System.err.println("[duet] the launcher (pid " + parentPid + ") is gone: exiting with it");
      Runtime.getRuntime().halt(ORPHAN_EXIT_CODE);
    }, "duet-parent-watch");
    watch.setDaemon(true);
    watch.start();
  }

  /**
   * The JVM options that give a JVM what the relaunch would: the Vector API, the kernels'
   * unchecked loads, {@code extraJvmFlags}, and {@code -Dduet.relaunch=false}, so that a JVM
   * started with them stays the one process. For launchers that start a Duet main directly
   * (with {@link #addHugePageTunable} on its environment).
   */
  public static List<String> jvmFlags(List<String> extraJvmFlags) {
    List<String> flags = new ArrayList<>(List.of("--add-modules", MODULE, UNCHECKED_LOADS_FLAG));
    flags.addAll(extraJvmFlags);
    flags.add("-D" + RELAUNCH_PROPERTY + "=false");
    return flags;
  }

  /** Adds {@link #HUGE_PAGE_TUNABLE} to a child's environment unless it sets the variable. */
  public static void addHugePageTunable(Map<String, String> environment) {
    environment.putIfAbsent(TUNABLES_VARIABLE, HUGE_PAGE_TUNABLE);
  }

  private static List<String> childCommand(Class<?> mainClass, String[] args,
      List<String> extraJvmFlags) {
    String javaHome = System.getProperty("java.home");
    String classPath = System.getProperty("java.class.path");
    if (javaHome == null || classPath == null || classPath.isEmpty()) {
      return null;
    }
    List<String> command = new ArrayList<>();
    command.add(Path.of(javaHome, "bin", "java").toString());
    command.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
    command.addAll(jvmFlags(extraJvmFlags));
    command.add("-D" + PARENT_PID_PROPERTY + "=" + ProcessHandle.current().pid());
    command.add("-cp");
    command.add(classPath);
    command.add(mainClass.getName());
    command.addAll(List.of(args));
    return command;
  }
}
