package io.duet.engine.cli;

import io.duet.engine.EngineOptions;
import java.nio.file.Path;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** The checkpoint and compute threads every {@code engine.jar} command opens its engine with. */
final class EngineArguments {

  @Parameters(index = "0", description = "llama2.c checkpoint")
  Path model;

  @Option(names = "--threads", description = "compute threads (default: all cores)")
  int threads = new EngineOptions().threads();

  /** Options for the checkpoint and the threads asked for, the rest at their defaults. */
  EngineOptions engineOptions() {
    return new EngineOptions().modelPath(model).threads(threads);
  }
}
