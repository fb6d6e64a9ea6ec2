package io.duet.engine.cli;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The packaged engine jar on a Java 22+ runtime (the newest JDK the build found, passed as
 * {@code duet.java22.home}): it must pick its multi-release Vector API kernels, not fall back to
 * scalar ones, and still reproduce run.c's greedy output byte for byte.
 */
class NewerJdkIT {

  @Test
  void newerJdkRunsTheVectorKernelsAndReproducesRunC() throws Exception {
    PackagedJar jar = new PackagedJar(Path.of(System.getProperty("duet.java22.home")));
    jar.assertReproducesRunC();
    String kernels = jar.kernelsLine();
    assertTrue(kernels.contains("Vector API kernels") && kernels.contains("MemorySegment loads"),
        kernels);
  }
}
