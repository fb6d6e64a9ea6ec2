package io.duet.proxy;

import io.duet.engine.llama.Llama2cCheckpoint;
import io.duet.engine.llama.Llama2cTokenizer;
import io.duet.engine.llama.LlamaConfig;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The built-in demo model that {@code java -jar proxy-service.jar} serves when no model is
 * configured: a tiny Llama-shaped checkpoint with random weights (its text is noise) and a
 * character-level tokenizer, written to a temporary directory at start-up. It exists so that
 * the whole PD pipeline can be tried without any files; real weights come from
 * {@code --model}/{@code --tokenizer} or {@code MODEL_PATH}/{@code TOKENIZER_PATH}.
 */
public final class DemoModel {

  /** The name clients use for it unless configured otherwise. */
  public static final String SERVED_NAME = "duet-demo-random";

  private static final int DIM = 64;
  private static final int HIDDEN = 176;
  private static final int LAYERS = 2;
  private static final int HEADS = 4;
  private static final int SEQ_LEN = 512;
  private static final int FIRST_CHAR = 0x20;
  private static final int LAST_CHAR = 0x7E;
  /** unk, BOS, EOS and 256 byte tokens come before the printable ASCII characters. */
  private static final int PRINTABLE_TOKENS = 3 + 256;
  private static final int VOCAB = PRINTABLE_TOKENS + (LAST_CHAR - FIRST_CHAR + 1);

  /** The written files. */
  public record Written(Path model, Path tokenizer) {
  }

  private DemoModel() {
  }

  /** Writes the demo checkpoint and tokenizer into {@code directory}. */
  public static Written write(Path directory) throws IOException {
    Path model = directory.resolve("duet-demo-random.bin");
    Path tokenizer = directory.resolve("duet-demo-random.tokenizer.bin");
    writeModel(model, new Random(2026));
    writeTokenizer(tokenizer);
    return new Written(model, tokenizer);
  }

  private static void writeModel(Path path, Random random) throws IOException {
    Llama2cCheckpoint.TensorValues weights = Llama2cCheckpoint.randomWeights(random);
    Llama2cCheckpoint.write(path, new LlamaConfig(DIM, HIDDEN, LAYERS, HEADS, HEADS, VOCAB,
        SEQ_LEN, false), (tensor, out) -> {
          if (tensor.name().equals("wcls")) {
            // Only printable characters get logits, and large ones (a spread of several units),
            // so that sampling almost never leaves them and the noise stays readable.
            for (int token = 0; token < VOCAB; token++) {
              for (int i = 0; i < DIM; i++) {
                out.putFloat(token >= PRINTABLE_TOKENS ? (random.nextFloat() * 2 - 1) * 1.5f : 0f);
              }
            }
          } else {
            weights.write(tensor, out);
          }
        });
  }

  private static void writeTokenizer(Path path) throws IOException {
    List<byte[]> pieces = new ArrayList<>();
    pieces.add(utf8("<unk>"));
    pieces.add(utf8("\n<s>\n"));
    pieces.add(utf8("\n</s>\n"));
    for (int b = 0; b < 256; b++) {
      pieces.add(utf8(String.format("<0x%02X>", b)));
    }
    for (int c = FIRST_CHAR; c <= LAST_CHAR; c++) {
      pieces.add(utf8(String.valueOf((char) c)));
    }
    Llama2cTokenizer.write(path, pieces, new float[pieces.size()]);
  }

  private static byte[] utf8(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }
}
