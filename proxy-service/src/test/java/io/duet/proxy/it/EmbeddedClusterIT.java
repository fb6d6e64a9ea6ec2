package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Two packaged proxies with their embedded 1P1D started at once on one machine, no cluster name
 * given, their Hazelcast ports in one range and each listing that range as its members, as two
 * {@code java -jar proxy-service.jar} started by hand do: each must stay a cluster of one
 * member, whose registry holds its own instances only.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class EmbeddedClusterIT {

  private static final Pattern CLUSTER = Pattern.compile("Joining cluster '([^']+)'");
  private static final Pattern PROXY_ID = Pattern.compile("Duet proxy (\\S+) ready on");
  private static final Pattern MEMBERS = Pattern.compile("Members \\{size:(\\d+)");
  private static final Pattern INSTANCE_JOINED = Pattern.compile("Instance (\\S+) \\(\\w+\\) "
      + "joined");

  @TempDir
  Path work;

  @Test
  void twoEmbeddedProxiesStartedAtOnceStayApart() throws Exception {
    int clusterPort = ProxyProcess.randomClusterPort();
    Path workA = Files.createDirectory(work.resolve("a"));
    Path workB = Files.createDirectory(work.resolve("b"));
    List<CompletableFuture<ProxyProcess>> starting = List.of(start(workA, clusterPort),
        start(workB, clusterPort));
    try {
      String logA = starting.get(0).get().log();
      String logB = starting.get(1).get().log();
      for (String log : List.of(logA, logB)) {
        assertEquals(List.of("1"), all(MEMBERS, log), "Hazelcast's member lists:\n" + log);
        String proxy = first(PROXY_ID, log);
        List<String> instances = all(INSTANCE_JOINED, log);
        assertEquals(List.of(proxy + "#0", proxy + "-decode#0", proxy + "-prefill#0"),
            instances.stream().sorted().toList(), "the instances its registry saw");
      }
      String clusterA = first(CLUSTER, logA);
      String clusterB = first(CLUSTER, logB);
      assertNotEquals(clusterA, clusterB, "each proxy names a cluster of its own");
      assertTrue(clusterA.startsWith("duet-embedded-"), clusterA);
    } finally {
      // one that is still starting (the other failed) is closed once it has started
      starting.forEach(proxy -> proxy.thenAccept(EmbeddedClusterIT::closeQuietly));
    }
  }

  private static CompletableFuture<ProxyProcess> start(Path workDir, int clusterPort) {
    return CompletableFuture.supplyAsync(() -> {
      try {
        return ProxyProcess.startUnnamed(workDir, clusterPort);
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    });
  }

  private static void closeQuietly(ProxyProcess proxy) {
    try {
      proxy.close();
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  private static String first(Pattern pattern, String log) {
    Matcher matcher = pattern.matcher(log);
    assertTrue(matcher.find(), pattern + " not in the log:\n" + log);
    return matcher.group(1);
  }

  private static List<String> all(Pattern pattern, String log) {
    List<String> found = new ArrayList<>();
    Matcher matcher = pattern.matcher(log);
    while (matcher.find()) {
      found.add(matcher.group(1));
    }
    return found;
  }
}
