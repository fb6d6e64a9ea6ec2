package io.duet.bench;

import io.duet.engine.EngineOptions;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** What the benchmarks that run engines on random prompts take alike: threads and the seed. */
final class EngineBenchOptions {

  @Option(names = "--threads", description = "compute threads per engine (default: all cores)")
  int threads = new EngineOptions().threads();

  @Option(names = "--seed", description = "seed of the random prompts (default: ${DEFAULT-VALUE})")
  long seed = 42;

  /** Options for {@code model} with the threads asked for, the rest at their defaults. */
  EngineOptions engineOptions(Path model) {
    return new EngineOptions().modelPath(model).threads(threads);
  }
}
