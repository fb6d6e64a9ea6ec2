package io.duet.engine.cli;

import io.duet.engine.deepseek.RandomDeepSeekCheckpoint;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Shape;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Storage;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Writes a DeepSeek-V3 checkpoint of random weights, to benchmark the architecture at a chosen
 * size (the defaults: about 90M parameters, 180 MB in BF16).
 */
@Command(name = "random-deepseek", mixinStandardHelpOptions = true,
    description = "Write a DeepSeek-V3 checkpoint (Hugging Face layout) of random weights.")
final class RandomDeepSeekCommand implements Callable<Integer> {

  @Parameters(index = "0", description = "directory to write config.json and model.safetensors to")
  Path directory;

  @Option(names = "--dtype", description = "F32, BF16 or FP8 (default: ${DEFAULT-VALUE})")
  Storage storage = Storage.BF16;

  @Option(names = "--hidden", description = "hidden_size (default: ${DEFAULT-VALUE})")
  int hidden = 512;

  @Option(names = "--layers", description = "num_hidden_layers (default: ${DEFAULT-VALUE})")
  int layers = 6;

  @Option(names = "--heads", description = "num_attention_heads (default: ${DEFAULT-VALUE})")
  int heads = 8;

  @Option(names = "--q-lora-rank", description = "q_lora_rank, 0 = null "
      + "(default: ${DEFAULT-VALUE})")
  int qLoraRank = 192;

  @Option(names = "--kv-lora-rank", description = "kv_lora_rank (default: ${DEFAULT-VALUE})")
  int kvLoraRank = 64;

  @Option(names = "--experts", description = "n_routed_experts (default: ${DEFAULT-VALUE})")
  int experts = 64;

  @Option(names = "--vocab", description = "vocab_size (default: ${DEFAULT-VALUE})")
  int vocab = 16384;

  @Option(names = "--mtp-layers", description = "num_nextn_predict_layers: multi-token "
      + "prediction modules to write (default: ${DEFAULT-VALUE})")
  int mtpLayers = 1;

  @Option(names = "--draftable", description = "make the MTP module's drafts mostly right: "
      + "blocks' outputs scaled down, the module repeating the main model one token later")
  boolean draftable;

  @Option(names = "--seed", description = "random seed (default: ${DEFAULT-VALUE})")
  long seed = 1;

  @Override
  public Integer call() throws Exception {
    // DeepSeek-V3's proportions where they are not options: heads of 32+16 query/key and 32
    // value dims, 1 dense layer, top 6 of 8 groups (4 searched), 1 shared expert.
    Shape shape = new Shape(hidden, layers, 1, heads, qLoraRank, kvLoraRank, 32, 16, 32,
        3 * hidden, hidden / 4, experts, 6, 8, 4, 1, vocab, 4096, mtpLayers);
    RandomDeepSeekCheckpoint.write(directory, shape, storage, 128, false, seed, draftable);
    System.out.println("wrote " + directory + ": " + shape);
    return 0;
  }
}
