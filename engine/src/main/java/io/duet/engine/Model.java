package io.duet.engine;

import io.duet.engine.impl.WeightArena;
import io.duet.engine.impl.WeightMatrix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * A llama2.c checkpoint opened for inference. By default the weights stay in the memory-mapped
 * file (off the Java heap), so opening costs a header read whatever the model's size; pages are
 * read on first use. {@link WeightStorage#HUGE_PAGES} copies them off the heap instead.
 *
 * <p>Format (legacy llama2.c): seven little-endian int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means an unshared classifier), then
 * float32 tensors: token embedding, attention RMSNorm, wq, wk, wv, wo, FFN RMSNorm, w1, w2, w3,
 * final RMSNorm, two unused RoPE tables, and the classifier when it is not shared.
 */
public final class Model {

  private static final int HEADER_BYTES = 7 * Integer.BYTES;
  /** The first word of llama2.c's newer export formats ("ak42"), which this reader does not take. */
  private static final int NEW_FORMAT_MAGIC = 0x616b3432;

  private final Path path;
  private final ModelConfig config;
  private final long fileSize;
  private final WeightMatrix tokenEmbedding;
  private final WeightMatrix classifier;
  private final Layer[] layers;
  private final float[] finalNorm;
  private final String storage;
  private volatile String contentHash;

  /** The weights of one transformer block. Norm weights are tiny and copied to the heap. */
  public record Layer(float[] attentionNorm, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv,
      WeightMatrix wo, float[] ffnNorm, WeightMatrix w1, WeightMatrix w2, WeightMatrix w3) {
  }

  private Model(Path path, ModelConfig config, long fileSize, WeightMatrix tokenEmbedding,
      WeightMatrix classifier, Layer[] layers, float[] finalNorm, String storage) {
    this.path = path;
    this.config = config;
    this.fileSize = fileSize;
    this.tokenEmbedding = tokenEmbedding;
    this.classifier = classifier;
    this.layers = layers;
    this.finalNorm = finalNorm;
    this.storage = storage;
  }

  /** Opens a checkpoint with its weights {@link WeightStorage#MAPPED}. */
  public static Model load(Path path) throws IOException {
    return load(path, WeightStorage.MAPPED);
  }

  /**
   * Opens a checkpoint. Fails with a {@link ModelFormatException} naming the problem when the
   * header is implausible or the file size does not match the shape the header declares.
   */
  public static Model load(Path path, WeightStorage storage) throws IOException {
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
      long size = channel.size();
      if (size < HEADER_BYTES) {
        throw new ModelFormatException(path + ": " + size + " bytes is too short for a llama2.c "
            + "checkpoint header (" + HEADER_BYTES + " bytes)");
      }
      ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
      channel.read(header, 0);
      header.flip();
      int first = header.getInt(0);
      if (first == NEW_FORMAT_MAGIC) {
        throw new ModelFormatException(path + ": this is a llama2.c version-1/2 export (magic "
            + "'ak42'); export the legacy (version 0) format instead");
      }
      int vocab = header.getInt(5 * Integer.BYTES);
      ModelConfig config = new ModelConfig(header.getInt(0), header.getInt(4), header.getInt(8),
          header.getInt(12), header.getInt(16), Math.abs(vocab), header.getInt(24), vocab > 0);
      config.validate(path.toString());
      long expected = expectedSize(config);
      if (size != expected) {
        throw new ModelFormatException(path + ": file is " + size + " bytes but the header "
            + config + " needs exactly " + expected + " bytes"
            + (size < expected ? " (truncated?)" : " (trailing data: wrong header?)"));
      }
      return map(path, channel, config, size, storage);
    }
  }

  static long expectedSize(ModelConfig c) {
    long dim = c.dim();
    long kvDim = c.kvDim();
    long l = c.layers();
    long floats = c.vocabSize() * dim // token embedding
        + l * dim // attention norm
        + l * dim * dim + 2 * l * dim * kvDim + l * dim * dim // wq, wk, wv, wo
        + l * dim // ffn norm
        + 3 * l * dim * c.hiddenDim() // w1, w2, w3
        + dim // final norm
        + (long) c.seqLen() * c.headSize() // two legacy RoPE tables of seq_len * head_size / 2
        + (c.sharedClassifier() ? 0 : c.vocabSize() * dim);
    return HEADER_BYTES + floats * Float.BYTES;
  }

  private static Model map(Path path, FileChannel channel, ModelConfig c, long size,
      WeightStorage storage) throws IOException {
    WeightArena arena = storage == WeightStorage.HUGE_PAGES ? new WeightArena(size) : null;
    Mapper m = new Mapper(channel, HEADER_BYTES, arena);
    int dim = c.dim();
    int kvDim = c.kvDim();
    int hidden = c.hiddenDim();
    int n = c.layers();
    WeightMatrix embedding = m.matrix(c.vocabSize(), dim);
    float[][] attNorm = m.vectors(n, dim);
    WeightMatrix[] wq = m.matrices(n, dim, dim);
    WeightMatrix[] wk = m.matrices(n, kvDim, dim);
    WeightMatrix[] wv = m.matrices(n, kvDim, dim);
    WeightMatrix[] wo = m.matrices(n, dim, dim);
    float[][] ffnNorm = m.vectors(n, dim);
    WeightMatrix[] w1 = m.matrices(n, hidden, dim);
    WeightMatrix[] w2 = m.matrices(n, dim, hidden);
    WeightMatrix[] w3 = m.matrices(n, hidden, dim);
    float[] finalNorm = m.vectors(1, dim)[0];
    m.skip((long) c.seqLen() * c.headSize() * Float.BYTES);
    WeightMatrix classifier = c.sharedClassifier() ? embedding : m.matrix(c.vocabSize(), dim);
    Layer[] layers = new Layer[n];
    for (int i = 0; i < n; i++) {
      layers[i] = new Layer(attNorm[i], wq[i], wk[i], wv[i], wo[i], ffnNorm[i], w1[i], w2[i], w3[i]);
    }
    String where = arena == null ? "mapped from the file" : arena.describe();
    return new Model(path, c, size, embedding, classifier, layers, finalNorm, where);
  }

  /**
   * Walks the file front to back, mapping each tensor as its own region (each under 2 GiB), or
   * copying it into the arena when there is one.
   */
  private static final class Mapper {
    private final FileChannel channel;
    private final WeightArena arena;
    private long position;

    Mapper(FileChannel channel, long position, WeightArena arena) {
      this.channel = channel;
      this.position = position;
      this.arena = arena;
    }

    WeightMatrix matrix(int rows, int cols) throws IOException {
      return matrices(1, rows, cols)[0];
    }

    WeightMatrix[] matrices(int count, int rows, int cols) throws IOException {
      long bytesEach = (long) rows * cols * Float.BYTES;
      if (bytesEach > Integer.MAX_VALUE) {
        throw new ModelFormatException("a " + rows + "x" + cols + " tensor exceeds 2 GiB, "
            + "which this engine cannot map as one region");
      }
      WeightMatrix[] out = new WeightMatrix[count];
      for (int i = 0; i < count; i++) {
        ByteBuffer region = arena != null ? arena.copy(channel, position, (int) bytesEach)
            : channel.map(FileChannel.MapMode.READ_ONLY, position, bytesEach);
        out[i] = new WeightMatrix(region, rows, cols);
        position += bytesEach;
      }
      return out;
    }

    float[][] vectors(int count, int length) throws IOException {
      float[][] out = new float[count][length];
      ByteBuffer buffer = ByteBuffer.allocate(count * length * Float.BYTES)
          .order(ByteOrder.LITTLE_ENDIAN);
      while (buffer.hasRemaining()) {
        if (channel.read(buffer, position + buffer.position()) < 0) {
          throw new ModelFormatException("checkpoint ends inside a norm vector");
        }
      }
      buffer.flip();
      for (float[] v : out) {
        buffer.asFloatBuffer().get(v);
        buffer.position(buffer.position() + length * Float.BYTES);
      }
      position += (long) count * length * Float.BYTES;
      return out;
    }

    void skip(long bytes) {
      position += bytes;
    }
  }

  public Path path() {
    return path;
  }

  public ModelConfig config() {
    return config;
  }

  public long fileSize() {
    return fileSize;
  }

  /** Where the weights are, for logs: mapped, or copied and how much of it on huge pages. */
  public String storageDescription() {
    return storage;
  }

  public WeightMatrix tokenEmbedding() {
    return tokenEmbedding;
  }

  public WeightMatrix classifier() {
    return classifier;
  }

  public Layer layer(int i) {
    return layers[i];
  }

  public float[] finalNorm() {
    return finalNorm;
  }

  /**
   * SHA-256 of the whole checkpoint file, as lowercase hex. Computed on first call (it reads
   * every page of the file) and remembered; KV layout fingerprints are built on it, so two
   * engines only exchange KV blocks when they run the very same weights.
   */
  public String contentHash() {
    String hash = contentHash;
    if (hash == null) {
      synchronized (this) {
        hash = contentHash;
        if (hash == null) {
          hash = computeContentHash();
          contentHash = hash;
        }
      }
    }
    return hash;
  }

  private String computeContentHash() {
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
      MessageDigest digest = MessageDigest.getInstance("SHA-256");
      ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 20);
      while (channel.read(buffer) >= 0) {
        buffer.flip();
        digest.update(buffer);
        buffer.clear();
        if (channel.position() >= fileSize) {
          break;
        }
      }
      return HexFormat.of().formatHex(digest.digest());
    } catch (IOException e) {
      throw new IllegalStateException("cannot re-read " + path + " to hash it: " + e.getMessage(), e);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is a required JDK algorithm", e);
    }
  }
}
