package io.duet.engine.cli;

import io.duet.engine.EngineOptions;
import io.duet.engine.WeightFormatMode;
import io.duet.engine.WeightStorage;
import java.nio.file.Path;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * The checkpoint, compute threads, weight storage and format every {@code engine.jar} command opens its
 * engine with.
 */
final class EngineArguments {

  @Parameters(index = "0", description = "llama2.c checkpoint file, or Hugging Face "
      + "checkpoint directory (DeepSeek-V3)")
  Path model;

  @Option(names = "--threads", description = "compute threads (default: all cores)")
  int threads = new EngineOptions().threads();

  @Option(names = "--huge-pages", description = "copy the weights off the heap onto transparent "
      + "huge pages: faster decode, slower start (default: map the file; not in run.c)")
  boolean hugePages;

  @Option(names = "--weight-format", description = "float32: BF16 and FP8 weights converted at "
      + "load, faster decode; native: kept as the checkpoint stores them, a quarter or half "
      + "the memory, read in place by the kernels (default: ${DEFAULT-VALUE})")
  WeightFormatMode weightFormat = EngineOptions.DEFAULT_WEIGHT_FORMAT;

  /** Options for the checkpoint, threads and weights asked for, the rest at defaults. */
  EngineOptions engineOptions() {
    return new EngineOptions().modelPath(model).threads(threads)
        .weightStorage(hugePages ? WeightStorage.HUGE_PAGES : WeightStorage.MAPPED)
        .weightFormat(weightFormat);
  }
}
