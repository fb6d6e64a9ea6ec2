package io.duet.bench;

import io.duet.service.ServiceRuntime;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code java -jar bench.jar pd-latency|kv-transfer|eventbus-overhead|routing|http-load|
 * reload-lag|join-lag|expert-parallel|mtp ...}: serving benchmarks of Duet. Results go to stdout as tables (and to {@code --json FILE}); progress and
 * logs go to stderr.
 */
@Command(name = "bench.jar", mixinStandardHelpOptions = true,
    description = "Serving benchmarks: PD latency vs the engine alone, KV transfer throughput, "
        + "event-bus overhead per streamed token, the proxy's time per routing decision, an "
        + "open-loop HTTP load, how long a reload and a joining instance take to show.",
    subcommands = {PdLatencyCommand.class, KvTransferCommand.class,
        EventBusOverheadCommand.class, RoutingCommand.class, HttpLoadCommand.class,
        ReloadLagCommand.class, JoinLagCommand.class, ExpertParallelCommand.class,
        KvPerTokenCommand.class, WeightFormatsCommand.class,
        MtpCommand.class})
public final class BenchMain {

  private static final String LOGBACK_CONFIG = "logback.configurationFile";

  public static void main(String[] args) {
    // Before anything logs (ServiceRuntime has a logger): stdout carries the results only,
    // warnings and errors go to stderr.
    if (System.getProperty(LOGBACK_CONFIG) == null) {
      System.setProperty(LOGBACK_CONFIG, "logback-bench.xml");
    }
    ServiceRuntime.relaunchIfNeeded(BenchMain.class, args);
    System.exit(commandLine().execute(args));
  }

  /** The command line, which takes enum values in any case ({@code --arrivals poisson}). */
  static CommandLine commandLine() {
    return new CommandLine(new BenchMain()).setCaseInsensitiveEnumValuesAllowed(true);
  }
}
