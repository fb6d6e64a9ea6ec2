package io.duet.proxy.bigram;

import io.duet.engine.EngineOptions;
import io.duet.engine.KvComponent;
import io.duet.engine.ModelFormatException;
import io.duet.engine.ModelInfo;
import io.duet.engine.Tokenizer;
import io.duet.engine.spi.Architecture;
import io.duet.engine.spi.ForwardBatch;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.LoadedModel;
import io.duet.engine.spi.PagedKvCache;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * A test-only second architecture, registered by this package's service file alone: a bigram
 * table whose next-token logits also depend on every earlier token through the KV cache, so that
 * a sequence decoded after a KV transfer continues correctly only if its KV really moved.
 *
 * <p>The model: {@code logits = table[token] + 0.25 * table[(sum of the sequence's tokens up to
 * here) mod vocab]}, where the sum is read back from the cache, which stores each token's id as
 * its one KV value. Text is one character per token ({@link BigramModel#ALPHABET}).
 */
public final class BigramArchitecture implements Architecture {

  public static final String NAME = "bigram-test";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public boolean recognizes(Path model) {
    try {
      return Files.isRegularFile(model) && BigramModel.hasMagic(model);
    } catch (IOException e) {
      return false;
    }
  }

  @Override
  public LoadedModel open(EngineOptions options) throws IOException {
    Path path = options.modelPath();
    byte[] bytes = Files.readAllBytes(path);
    if (!BigramModel.hasMagic(path)) {
      throw new ModelFormatException(path + " is not a bigram test model");
    }
    return new Loaded(path, BigramModel.table(bytes), sha256(bytes));
  }

  private static String sha256(byte[] bytes) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  private record Loaded(Path path, float[][] table, String contentHash) implements LoadedModel {

    @Override
    public ModelInfo info() {
      return new ModelInfo(NAME, table.length, BigramModel.CONTEXT, BigramModel.BOS,
          List.of(BigramModel.EOS), "plain", "vocab=" + table.length, 0);
    }

    @Override
    public int kvLayers() {
      return 1;
    }

    @Override
    public List<KvComponent> kvComponents() {
      return List.of(new KvComponent("token", KvComponent.F32, 1, 1));
    }

    @Override
    public Tokenizer tokenizer() {
      return new CharTokenizer();
    }

    @Override
    public String description() {
      return path.getFileName() + " (" + NAME + ")";
    }

    @Override
    public String weightsDescription() {
      return "on the heap";
    }

    @Override
    public ForwardPass forwardPass(ForwardResources resources) {
      PagedKvCache kv = resources.kv();
      return (ForwardBatch batch, float[] logits) -> {
        float[] cache = kv.layer(0);
        for (int t = 0; t < batch.rowCount(); t++) {
          int position = batch.position(t);
          int[] blocks = batch.blockTable(t);
          cache[kv.offset(blocks[position / kv.blockSize()], 0, 0, position % kv.blockSize())] =
              batch.token(t);
        }
        int vocab = table.length;
        for (int r = 0; r < batch.logitRowCount(); r++) {
          int row = batch.logitSourceRow(r);
          int[] blocks = batch.blockTable(row);
          long sum = 0;
          for (int p = 0; p <= batch.position(row); p++) {
            sum += (long) cache[kv.offset(blocks[p / kv.blockSize()], 0, 0, p % kv.blockSize())];
          }
          float[] bigram = table[batch.token(row)];
          float[] history = table[(int) (sum % vocab)];
          for (int v = 0; v < vocab; v++) {
            logits[r * vocab + v] = bigram[v] + 0.25f * history[v];
          }
        }
      };
    }
  }

  /** One token per character of the alphabet, after unk, BOS and EOS. */
  private static final class CharTokenizer implements Tokenizer {
    @Override
    public int vocabSize() {
      return BigramModel.VOCAB;
    }

    @Override
    public int[] encode(String text, boolean bos) {
      int[] ids = new int[text.length() + (bos ? 1 : 0)];
      int at = 0;
      if (bos) {
        ids[at++] = BigramModel.BOS;
      }
      for (char c : text.toCharArray()) {
        int index = BigramModel.ALPHABET.indexOf(c);
        if (index < 0) {
          throw new IllegalArgumentException("the bigram model cannot encode '" + c + "'");
        }
        ids[at++] = BigramModel.FIRST_CHAR + index;
      }
      return ids;
    }

    @Override
    public byte[] decode(int previous, int token) {
      return token < BigramModel.FIRST_CHAR ? new byte[0]
          : BigramModel.ALPHABET.substring(token - BigramModel.FIRST_CHAR,
              token - BigramModel.FIRST_CHAR + 1).getBytes(StandardCharsets.UTF_8);
    }
  }

  /** Reads little-endian floats, for {@link BigramModel}. */
  static ByteBuffer littleEndian(byte[] bytes) {
    return ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
  }
}
