package io.duet.engine;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the shared model files that tests read. */
public final class TestFiles {

  private TestFiles() {}

  /**
   * A file in the shared directory: system property {@code duet.shared.dir} (set by surefire), else
   * {@code ../../shared} from the engine module directory. A missing file fails the test, so a
   * broken setup can never pass as skipped tests.
   */
  public static Path shared(String relative) {
    String dir = System.getProperty("duet.shared.dir", "../../shared");
    Path path = Path.of(dir).resolve(relative).toAbsolutePath().normalize();
    assertTrue(Files.isRegularFile(path), "shared test file is missing: " + path);
    return path;
  }
}
