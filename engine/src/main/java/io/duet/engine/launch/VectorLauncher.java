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
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        if (child.isAlive()) {
          child.destroy();
          try {
            child.waitFor(30, java.util.concurrent.TimeUnit.SECONDS);
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
    command.add("-cp");
    command.add(classPath);
    command.add(mainClass.getName());
    command.addAll(List.of(args));
    return command;
  }
}
