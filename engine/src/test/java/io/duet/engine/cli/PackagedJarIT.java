package io.duet.engine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.TestCheckpoints;
import io.duet.engine.TestFiles;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

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

  /**
   * {@code tokenize} with DeepSeek-V3's tokenizer.json from the packaged jar (which must carry
   * the JSON reader): the ids Hugging Face's tokenizers library gives (the fixture's).
   */
  @Test
  void tokenizeWithAHuggingFaceTokenizer() throws Exception {
    Path tokenizer = TestFiles.shared("models/deepseek-v3-tokenizer/tokenizer.json").getParent();
    String ids = new PackagedJar(JAVA_HOME).run("tokenize", tokenizer.toString(), "-i",
        "<｜User｜>Hi<｜Assistant｜>").stdout();
    assertEquals("128803 23166 128804\n", ids);
  }

  /**
   * The launcher asks glibc for huge pages, so weights copied off the heap get them wherever the
   * kernel's transparent huge pages are not switched off; where they are, the line says what is
   * missing. The model is written here: the shared ones are too small for a 2 MB page.
   */
  @Test
  void plainJavaJarPutsCopiedWeightsOnHugePagesWhereTheKernelAllows(@TempDir Path dir)
      throws Exception {
    Path model = TestCheckpoints.write(dir.resolve("m12.bin"), 256, 512, 2, 8, 8, 8192, 64,
        true, 5);
    String weights = new PackagedJar(JAVA_HOME).benchLine("weights: ", model.toString(),
        "--huge-pages");
    Path thp = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
    if (!Files.isReadable(thp)) {
      assertTrue(weights.startsWith("weights: copied to "), weights);
    } else if (Files.readString(thp).contains("[never]")) {
      assertTrue(weights.contains("not on huge pages"), weights);
    } else {
      assertTrue(weights.contains("MB of it on huge pages"), weights);
    }
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
