package io.duet.engine.compute;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Picks the fastest kernels this JVM can run: the Vector API when the incubator module is in the
 * boot layer, the hardware has 256-bit float vectors and the kernels pass a self-check against
 * the scalar ones; scalar Java otherwise. The system property {@code duet.kernels=scalar} forces
 * the scalar kernels (for comparison runs).
 *
 * <p>The self-check matters because the incubating API changes between JDKs: Java 20 removed the
 * {@code ByteBuffer} loads these kernels are compiled against, so on a newer JDK they would only
 * fail in the middle of the first forward pass.
 */
public final class KernelsProvider {

  public static final String PROPERTY = "duet.kernels";
  private static final boolean VECTOR_MODULE_PRESENT =
      ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
  private static final Logger LOG = LoggerFactory.getLogger(KernelsProvider.class);

  private KernelsProvider() {
  }

  /**
   * The kernels for this JVM, chosen and self-checked once: engines opened later share them.
   * Checking again per engine would run the kernels on the check's odd shapes after the JIT had
   * compiled them for the model's, which sent them back to the interpreter and left the
   * recompiled code slower (a second engine's prefill took 1.5-2x as long).
   */
  public static Kernels best() {
    return Chosen.KERNELS;
  }

  /** Initialised on first use, by the JVM's class initialisation lock. */
  private static final class Chosen {
    static final Kernels KERNELS = choose();

    static {
      LOG.info("using {}", KERNELS.description());
    }
  }

  public static Kernels scalar() {
    return new ScalarKernels("requested");
  }

  private static Kernels choose() {
    if ("scalar".equalsIgnoreCase(System.getProperty(PROPERTY, ""))) {
      return new ScalarKernels("forced by -D" + PROPERTY + "=scalar");
    }
    if (!vectorModulePresent()) {
      return new ScalarKernels("jdk.incubator.vector is not in the boot layer; "
          + "start the JVM with --add-modules jdk.incubator.vector");
    }
    try {
      Class<?> type = Class.forName("io.duet.engine.compute.VectorKernels");
      if (!(Boolean) type.getDeclaredMethod("supported").invoke(null)) {
        return new ScalarKernels("this CPU has no 256-bit float vectors");
      }
      return verified((Kernels) type.getDeclaredConstructor().newInstance());
    } catch (ReflectiveOperationException | LinkageError e) {
      return new ScalarKernels("Vector API unusable on this JDK: " + e);
    }
  }

  static boolean vectorModulePresent() {
    return VECTOR_MODULE_PRESENT;
  }

  /**
   * Returns {@code candidate} if it computes a small matrix product and dot product with exactly
   * the bits of the scalar kernels, the scalar kernels (saying why) otherwise.
   */
  static Kernels verified(Kernels candidate) {
    Kernels reference = new ScalarKernels("reference");
    int rows = 3;
    int cols = 2 * Kernels.LANES + 3;
    int tokens = 5;
    ByteBuffer bytes = ByteBuffer.allocateDirect(rows * cols * Float.BYTES)
        .order(ByteOrder.LITTLE_ENDIAN);
    float[] x = new float[tokens * cols];
    for (int i = 0; i < rows * cols; i++) {
      bytes.putFloat(i * Float.BYTES, (float) Math.sin(i + 1));
    }
    for (int i = 0; i < x.length; i++) {
      x[i] = (float) Math.cos(3 * i + 1);
    }
    WeightMatrix w = new WeightMatrix(bytes, rows, cols);
    float[] expected = new float[tokens * rows];
    float[] actual = new float[tokens * rows];
    try {
      reference.matmul(w, x, cols, tokens, expected, 0, rows, 0, rows);
      candidate.matmul(w, x, cols, tokens, actual, 0, rows, 0, rows);
      boolean same = Arrays.equals(expected, actual)
          && Float.floatToRawIntBits(reference.dot(x, 1, x, cols, cols))
              == Float.floatToRawIntBits(candidate.dot(x, 1, x, cols, cols));
      return same ? candidate
          : new ScalarKernels(candidate.description() + " disagree with the scalar kernels");
    } catch (RuntimeException | LinkageError e) {
      return new ScalarKernels(candidate.description() + " fail on Java "
          + Runtime.version().feature() + ": " + e);
    }
  }
}
