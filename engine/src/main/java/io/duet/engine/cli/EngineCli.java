package io.duet.engine.cli;

import io.duet.engine.launch.VectorLauncher;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code java -jar engine.jar generate|bench|tokenize|random-deepseek ...}. */
@Command(name = "engine.jar", mixinStandardHelpOptions = true,
    description = "Pure-Java inference on llama2.c checkpoints and DeepSeek-V3 Hugging Face "
        + "checkpoints.",
    subcommands = {GenerateCommand.class, BenchCommand.class, TokenizeCommand.class,
        RandomDeepSeekCommand.class})
public final class EngineCli {

  private static final String LOGBACK_CONFIG = "logback.configurationFile";

  public static void main(String[] args) {
    VectorLauncher.ensureVectorApi(EngineCli.class, args);
    if (System.getProperty(LOGBACK_CONFIG) == null) {
      System.setProperty(LOGBACK_CONFIG, "logback-cli.xml");
    }
    int exit = new CommandLine(new EngineCli()).setCaseInsensitiveEnumValuesAllowed(true)
        .execute(args);
    System.exit(exit);
  }
}
