package io.duet.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * Every subcommand, run through picocli as {@code bench.jar} would run it, with tiny settings on
 * the 260K model: it must exit 0, print its tables, and every figure in them (differences and
 * counts that may be zero aside) must be a positive number; the JSON must agree.
 */
class BenchSmokeTest {

  @TempDir
  Path temp;

  private static String shared(String file) {
    return Path.of(System.getProperty("duet.shared.dir", "../../shared"), "models", file)
        .toString();
  }

  /** Runs {@code bench.jar args}; returns stdout. */
  private static String run(String... args) {
    StringWriter out = new StringWriter();
    StringWriter err = new StringWriter();
    CommandLine cli = new CommandLine(new BenchMain());
    cli.setOut(new PrintWriter(out));
    cli.setErr(new PrintWriter(err));
    int exit = cli.execute(args);
    assertEquals(0, exit, "exit code; stderr:\n" + err + "\nstdout:\n" + out);
    assertTrue(err.toString().contains("[bench] phase 1/"), "progress on stderr: " + err);
    return out.toString();
  }

  /** The columns of text besides the first. */
  private static final Set<String> TEXT_COLUMNS = Set.of("unit", "policy", "setting");

  /**
   * The numeric cells of every table (a header line, a rule of dashes, rows up to a blank
   * line; cells separated by two or more spaces), skipping columns named {@code delta ...} or
   * {@code coalesced events}, which may legitimately be zero or negative.
   */
  private static List<Double> figures(String output) {
    List<Double> figures = new ArrayList<>();
    String[] lines = output.split("\\R");
    for (int i = 1; i < lines.length; i++) {
      if (!lines[i].startsWith("---")) {
        continue;
      }
      String[] header = lines[i - 1].trim().split(" {2,}");
      for (int r = i + 1; r < lines.length && !lines[r].isBlank(); r++) {
        String[] cells = lines[r].trim().split(" {2,}");
        assertEquals(header.length, cells.length, "cells of row: " + lines[r]);
        for (int c = 0; c < cells.length; c++) {
          if (header[c].startsWith("delta") || header[c].equals("coalesced events")) {
            continue;
          }
          try {
            double value = Double.parseDouble(cells[c]);
            assertTrue(value > 0 && Double.isFinite(value), header[c] + " = " + cells[c]
                + " in row: " + lines[r]);
            figures.add(value);
          } catch (NumberFormatException e) {
            assertTrue(c == 0 || TEXT_COLUMNS.contains(header[c]), "not a number: " + header[c]
                + " = " + cells[c] + " in row: " + lines[r]);
          }
        }
      }
    }
    return figures;
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void pdLatency() throws Exception {
    Path json = temp.resolve("pd.json");
    String out = run("pd-latency", shared("aidreams260K.bin"), "-z",
        shared("aidreams260K.tok512.bin"), "--requests", "3", "--prompt-tokens", "12",
        "--max-tokens", "5", "--concurrency", "1,2", "--warmup", "1", "--threads", "1",
        "--kv-cache-mb", "8", "--json", json.toString());
    assertTrue(out.contains("concurrency 1") && out.contains("concurrency 2"), out);
    // two concurrency levels x (4 metrics x 6 percentiles + 5 TTFT stages x 3 percentiles
    // + 2 setups x 4 totals)
    assertEquals(2 * (4 * 6 + 5 * 3 + 2 * 4), figures(out).size(), out);
    JsonObject figures = new JsonObject(Files.readString(json));
    assertEquals(2, figures.getJsonArray("runs").size());
    for (int i = 0; i < 2; i++) {
      JsonObject run = figures.getJsonArray("runs").getJsonObject(i);
      for (String setup : List.of("engine", "pd1p1d")) {
        JsonObject s = run.getJsonObject(setup);
        assertEquals(3, s.getInteger("requests"));
        assertEquals(15, s.getLong("outputTokens"), "every request generates --max-tokens");
        assertTrue(s.getJsonObject("ttftMs").getDouble("p50") > 0, setup);
        assertTrue(s.getJsonObject("tpotMs").getDouble("p99") > 0, setup);
        assertTrue(s.getDouble("outputTokensPerSecond") > 0, setup);
      }
      JsonObject pd = run.getJsonObject("pd1p1d");
      assertTrue(pd.getJsonObject("prefillMs").getDouble("p50") > 0, pd.encode());
      assertTrue(pd.getJsonObject("kvPullMs").getDouble("p50") > 0, pd.encode());
      assertTrue(pd.getJsonObject("prefillMs").getDouble("p50")
          < pd.getJsonObject("ttftMs").getDouble("p50"), "prefill is part of the TTFT");
    }
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void kvTransfer() throws Exception {
    Path json = temp.resolve("kv.json");
    String out = run("kv-transfer", shared("aidreams260K.bin"), "--tokens", "100", "--repeat",
        "3", "--warmup", "1", "--threads", "1", "--json", json.toString());
    // 3 paths x 7 figures + 4 stages x 3 figures
    assertEquals(3 * 7 + 4 * 3, figures(out).size(), out);
    JsonObject figures = new JsonObject(Files.readString(json));
    assertEquals(100, figures.getInteger("tokens"));
    assertTrue(figures.getLong("wireBytes") > 100 * figures.getLong("bytesPerToken"));
    assertTrue(figures.getJsonObject("pull").getDouble("medianMBps") > 0);
    assertTrue(figures.getJsonObject("rawSameBytes").getDouble("bestGiBps") > 0);
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void eventBusOverhead() throws Exception {
    Path json = temp.resolve("eb.json");
    String out = run("eventbus-overhead", "--messages", "400", "--warmup", "100", "--json",
        json.toString());
    assertTrue(out.contains("local") && out.contains("clustered"), out);
    // 4 streams (local, clustered) x (window 32, 1) x 8 figures
    assertEquals(4 * 8, figures(out).size(), out);
    JsonObject figures = new JsonObject(Files.readString(json));
    assertEquals(4, figures.getJsonArray("streams").size());
    for (int i = 0; i < 4; i++) {
      JsonObject stream = figures.getJsonArray("streams").getJsonObject(i);
      assertEquals(400, stream.getInteger("messages"));
      assertTrue(stream.getJsonObject("oneWayMicros").getDouble("p99") > 0);
    }
  }

  @Test
  @Timeout(value = 60, unit = TimeUnit.SECONDS)
  void routing() throws Exception {
    Path json = temp.resolve("routing.json");
    String out = run("routing", "--ranks", "40", "--prefills", "3", "--decisions", "2000",
        "--warmup", "500", "--waiting", "20", "--threads", "2", "--json", json.toString());
    // 2 decode policies x 2 settings x (claim, release) + 3 prefill policies, x 5 figures
    assertEquals((2 * 2 * 2 + 3) * 5, figures(out).size(), out);
    JsonObject figures = new JsonObject(Files.readString(json));
    assertEquals(11, figures.getJsonArray("rows").size());
    for (int i = 0; i < 11; i++) {
      JsonObject micros = figures.getJsonArray("rows").getJsonObject(i).getJsonObject("micros");
      assertEquals(4000, micros.getLong("count"), "2 threads x 2000 decisions");
      assertTrue(micros.getDouble("p50") > 0);
    }
  }
}
