package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code duet.jar check}: every shipped topology is valid and printed as a table; a broken one
 * prints all its problems and nothing else, and exits 1.
 */
class CheckCommandTest {

  private static final Path TOPOLOGIES = Path.of("..", "cluster-config", "topologies");

  /** What a run of the command printed, and its exit code. */
  private record Run(int exit, String out, String err) {
  }

  @TempDir
  Path dir;

  @Test
  void everyShippedTopologyIsValidAndPrintedAsATable() {
    for (String name : List.of("1p1d", "2p1d", "4p1d", "8p1d", "18p1d-ep144",
        "1p1d-ep4-2jvms")) {
      Path file = TOPOLOGIES.resolve(name + ".yaml");
      Run run = check(file);
      assertEquals(0, run.exit(), () -> name + ": " + run);
      assertEquals("", run.err(), name);
      List<String> lines = run.out().lines().toList();
      assertEquals(file.toAbsolutePath().normalize() + ": cluster duet-" + name + ", "
          + (lines.size() - 4) + " instances, valid", lines.get(0), run::out);
      assertTrue(lines.get(1).matches("INSTANCE +ROLE +HOST +PORTS +RANKS +SETTINGS"), run::out);
      assertTrue(lines.get(2).matches("c0 +proxy +127\\.0\\.0\\.1 +cluster 5701, http 7000 .*"),
          run::out);
      assertTrue(lines.get(3).matches("p0 +prefill +127\\.0\\.0\\.1 +cluster 5702, kv 6100, "
          + "status 8100 .*"), run::out);
    }
    Run reference = check(TOPOLOGIES.resolve("18p1d-ep144.yaml"));
    assertTrue(reference.out().lines().anyMatch(line -> line.matches("d0 +decode +127\\.0\\.0\\.1"
        + " +cluster 5720, status 9100-9243 \\(ranks 0-143\\) +144 = dp 144 x tp 1, ep 144 +"
        + "engine sim, max-num-seqs 60, num-speculative-tokens 1, decode-gear-list \\[120\\], "
        + ".*")), reference::out);
    assertTrue(reference.out().contains("model the simulated engine of d0: sim, 256 routed "
        + "experts (decode.ep checked)"), reference::out);
    Run spread = check(TOPOLOGIES.resolve("1p1d-ep4-2jvms.yaml"));
    assertTrue(spread.out().lines().anyMatch(line -> line.matches("d1 +decode +127\\.0\\.0\\.1"
        + " +cluster 5704, status 9110-9111 \\(ranks 0-1\\), expert channel 9310-9311 +2 = dp 2 "
        + "x tp 1, ep 4, ep-node 1 of 2 .*")), spread::out);
    Run small = check(TOPOLOGIES.resolve("2p1d.yaml"));
    assertTrue(small.out().lines().noneMatch(line -> line.contains("engine sim")), small::out);
  }

  @Test
  void aBrokenTopologyPrintsEveryProblemAndExits1() throws Exception {
    Path file = Files.writeString(dir.resolve("broken.yaml"), """
        cluster: {name: broken}
        instances:
          c0: {role: proxy, host: 127.0.0.1, cluster-port: 5701, proxy: {port: 7000}}
          p0: {role: prefill, host: 127.0.0.1, cluster-port: 5702,
               prefill: {kv-port: 6100, http-port: 9101}}
          d0: {role: decode, host: 127.0.0.1, cluster-port: 5703,
               decode: {dp: 2, ranks: 4, http-port: 9100, max-num-seqs: 32,
                        num-speculative-tokens: 1, decode-gear-list: [32]}}
        """);
    String source = "(file: " + file.toAbsolutePath() + ")";
    Run run = check(file);
    assertEquals(1, run.exit(), run::toString);
    assertEquals("", run.out());
    assertEquals("""
        invalid configuration, 3 problems:
          instances.d0.decode.ranks: expected 2 (= decode.dp x decode.tp), found '4' %1$s
          instances.d0.decode.decode-gear-list: expected [64] (= [decode.max-num-seqs x (1 + \
        decode.num-speculative-tokens)]), found '[32]' %1$s
          instances.d0.decode.http-port: expected a port nothing else of the topology uses on \
        127.0.0.1 (rank 1's status port 9101 is also instances.p0.prefill.http-port), found \
        '9100' %1$s
        """.formatted(source), run.err());
  }

  private static Run check(Path file) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine command = DuetMain.commandLine().setOut(new PrintWriter(out))
        .setErr(new PrintWriter(err));
    int exit = command.execute("check", file.toString());
    return new Run(exit, out.toString(), err.toString());
  }
}
