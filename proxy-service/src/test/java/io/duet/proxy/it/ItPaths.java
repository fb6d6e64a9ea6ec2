package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/** Where an integration test finds the packaged jars and the shared models, and free ports. */
final class ItPaths {

  private ItPaths() {
  }

  /** target/ of this module: the parent of the test classes directory. */
  static Path targetDir() throws Exception {
    Path classes = Path.of(ItPaths.class.getProtectionDomain().getCodeSource().getLocation()
        .toURI());
    return classes.getParent();
  }

  /** The repository root, where the service modules' target/ folders are. */
  static Path repoDir() throws Exception {
    List<Path> candidates = new ArrayList<>();
    String configured = System.getProperty("duet.jars.dir");
    if (configured != null && !configured.isBlank()) {
      candidates.add(Path.of(configured));
    }
    candidates.add(targetDir().getParent().getParent());
    for (Path candidate : candidates) {
      if (Files.isRegularFile(candidate.resolve("proxy-service/target/proxy-service.jar"))) {
        return candidate.toAbsolutePath().normalize();
      }
    }
    throw new AssertionError("no proxy-service/target/proxy-service.jar under " + candidates
        + ": run the 'package' phase first (mvn verify does)");
  }

  /** The shared folder, whose models/ holds the small real checkpoints. */
  static Path sharedDir(Path repo) {
    String configured = System.getProperty("duet.shared.dir");
    Path shared = configured != null && !configured.isBlank() ? Path.of(configured)
        : repo.resolve("../shared");
    if (!Files.isDirectory(shared.resolve("models"))) {
      shared = repo.resolve("../shared");
    }
    return shared.toAbsolutePath().normalize();
  }

  /** A file of the shared models folder; fails the test when it is missing. */
  static Path sharedModel(Path repo, String file) {
    Path path = sharedDir(repo).resolve("models").resolve(file);
    assertTrue(Files.isRegularFile(path), "model file missing: " + path);
    return path;
  }

  /** The runnable jar of a module under {@code repo}. */
  static Path jar(Path repo, String module) {
    Path jar = repo.resolve(module).resolve("target").resolve(module + ".jar");
    assertTrue(Files.isRegularFile(jar), "missing " + jar + ": run the 'package' phase first");
    return jar;
  }

  /**
   * The first port of {@code count} consecutive ports that are all free on the loopback address,
   * chosen below Linux's ephemeral range so that no socket the services open later lands on
   * them, and clear of {@code taken} (which it then extends).
   */
  static int freePortRange(int count, Set<Integer> taken) {
    ThreadLocalRandom random = ThreadLocalRandom.current();
    for (int attempt = 0; attempt < 1000; attempt++) {
      int base = 20_000 + random.nextInt(12_000 - count);
      boolean free = true;
      for (int port = base; port < base + count && free; port++) {
        free = !taken.contains(port) && isFree(port);
      }
      if (free) {
        for (int port = base; port < base + count; port++) {
          taken.add(port);
        }
        return base;
      }
    }
    throw new IllegalStateException("no " + count + " free consecutive ports found");
  }

  private static boolean isFree(int port) {
    try (ServerSocket socket = new ServerSocket()) {
      socket.setReuseAddress(false);
      socket.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
