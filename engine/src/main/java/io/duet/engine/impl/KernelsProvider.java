package io.duet.engine.impl;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Picks the fastest kernels this JVM can run: the Vector API when the incubator module is in the
 * boot layer and the hardware has 256-bit float vectors, scalar Java otherwise. The system
 * property {@code duet.kernels=scalar} forces the scalar kernels (for comparison runs).
 */
public final class KernelsProvider {

  public static final String PROPERTY = "duet.kernels";
  private static final Logger LOG = LoggerFactory.getLogger(KernelsProvider.class);

  private KernelsProvider() {
  }

  public static Kernels best() {
    Kernels chosen = choose();
    LOG.info("using {}", chosen.description());
    return chosen;
  }

  public static Kernels scalar() {
    return new ScalarKernels("requested");
  }

  private static Kernels choose() {
    if ("scalar".equalsIgnoreCase(System.getProperty(PROPERTY, ""))) {
      return new ScalarKernels("forced by -D" + PROPERTY + "=scalar");
    }
    if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
      return new ScalarKernels("jdk.incubator.vector is not in the boot layer; "
          + "start the JVM with --add-modules jdk.incubator.vector");
    }
    try {
      Class<?> type = Class.forName("io.duet.engine.impl.VectorKernels");
      if (!(Boolean) type.getDeclaredMethod("supported").invoke(null)) {
        return new ScalarKernels("this CPU has no 256-bit float vectors");
      }
      return (Kernels) type.getDeclaredConstructor().newInstance();
    } catch (ReflectiveOperationException | LinkageError e) {
      return new ScalarKernels("Vector API unusable on this JDK: " + e);
    }
  }
}
