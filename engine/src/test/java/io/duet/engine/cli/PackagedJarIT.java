package io.duet.engine.cli;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The packaged engine jar on the JDK running the build (Java 17 to 19): plain {@code java -jar}
 * must get the Vector API kernels with unchecked weight loads, and a JVM that has the Vector API
 * module but not the export those loads need must still give the same output, with checked loads
 * and a log line that says which flag to add.
 */
class PackagedJarIT {

  private static final Path JAVA_HOME = Path.of(System.getProperty("java.home"));

  @Test
  void plainJavaJarGetsUncheckedWeightLoads() throws Exception {
    PackagedJar jar = new PackagedJar(JAVA_HOME);
    jar.assertReproducesRunC();
    String kernels = jar.kernelsLine();
    assertTrue(kernels.contains("Vector API kernels") && kernels.contains("unchecked off-heap loads"),
        kernels);
  }

  @Test
  void withoutTheExportTheLoadsAreCheckedAndTheLogSaysHowToSpeedUp() throws Exception {
    PackagedJar jar = new PackagedJar(JAVA_HOME, "--add-modules", "jdk.incubator.vector");
    jar.assertReproducesRunC();
    String kernels = jar.kernelsLine();
    assertTrue(kernels.contains("Vector API kernels")
        && kernels.contains("bounds-checked ByteBuffer loads (start the JVM with "
            + "--add-exports=java.base/jdk.internal.vm.vector=ALL-UNNAMED"), kernels);
  }
}
