package io.duet.deploy;

import io.duet.cluster.InvalidConfigException;
import io.duet.deploy.impl.LaunchFailure;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code java -jar duet.jar check|up|status|logs|down FILE ...}: the launcher of topology
 * files. One JVM per instance of the file, started from the services' packaged jars on this
 * machine, detached, with what it started recorded under the log directory. {@code jvm-options}
 * prints the JVM options it starts them with, for other launchers (the ansible playbook).
 */
@Command(name = "duet.jar", mixinStandardHelpOptions = true,
    description = "Checks, starts, watches and stops the instances of a topology file.",
    subcommands = {CheckCommand.class, UpCommand.class, StatusCommand.class, LogsCommand.class,
        DownCommand.class, JvmOptionsCommand.class})
public final class DuetMain {

  private static final String LOGBACK_CONFIG = "logback.configurationFile";

  public static void main(String[] args) {
    // Before anything logs: stdout carries what the commands print, warnings go to stderr.
    if (System.getProperty(LOGBACK_CONFIG) == null) {
      System.setProperty(LOGBACK_CONFIG, "logback-duet.xml");
    }
    System.exit(commandLine().execute(args));
  }

  /**
   * The command line, which prints a bad topology file's problems and a launch failure's
   * reason without a stack trace, and exits with 1 for them.
   */
  public static CommandLine commandLine() {
    return new CommandLine(new DuetMain()).setExecutionExceptionHandler((error, line, parsed) -> {
      if (!(error instanceof InvalidConfigException || error instanceof LaunchFailure)) {
        throw error;
      }
      line.getErr().println(error.getMessage());
      return 1;
    });
  }
}
