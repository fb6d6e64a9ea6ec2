package io.duet.engine.llama;

import io.duet.engine.ModelFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The llama2.c checkpoint format (legacy, version 0), the one place that knows it: the reader,
 * the test fixtures and the demo model all go through here.
 *
 * <p>Seven little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; a negative vocab_size means an unshared classifier), then float32 tensors in the
 * order of {@link #tensors}: token embedding, attention RMSNorm, wq, wk, wv, wo, FFN RMSNorm,
 * w1, w2, w3, final RMSNorm, two unused RoPE tables, and the classifier when it is not shared.
 */
public final class Llama2cCheckpoint {

  public static final int HEADER_BYTES = 7 * Integer.BYTES;
  /** The first word of llama2.c's newer export formats ("ak42"), which this reader does not take. */
  private static final int NEW_FORMAT_MAGIC = 0x616b3432;

  private Llama2cCheckpoint() {
  }

  /** What a tensor holds. */
  public enum Kind {
    /** A weight matrix ({@code rows x cols}, row-major). */
    MATRIX,
    /** An RMSNorm weight vector ({@code cols} values). */
    NORM,
    /** llama2.c's two precomputed RoPE tables, which the engine recomputes and skips. */
    ROPE
  }

  /**
   * One tensor of the file: {@code count} matrices (one per layer, or one) of {@code rows x cols}
   * floats.
   */
  public record Tensor(String name, Kind kind, int count, int rows, int cols) {
    public long floats() {
      return (long) count * rows * cols;
    }
  }

  /** The tensors of a checkpoint of shape {@code c}, in file order. */
  public static List<Tensor> tensors(LlamaConfig c) {
    int dim = c.dim();
    int layers = c.layers();
    List<Tensor> t = new ArrayList<>();
    t.add(new Tensor("token_embedding", Kind.MATRIX, 1, c.vocabSize(), dim));
    t.add(new Tensor("rms_att", Kind.NORM, layers, 1, dim));
    t.add(new Tensor("wq", Kind.MATRIX, layers, dim, dim));
    t.add(new Tensor("wk", Kind.MATRIX, layers, c.kvDim(), dim));
    t.add(new Tensor("wv", Kind.MATRIX, layers, c.kvDim(), dim));
    t.add(new Tensor("wo", Kind.MATRIX, layers, dim, dim));
    t.add(new Tensor("rms_ffn", Kind.NORM, layers, 1, dim));
    t.add(new Tensor("w1", Kind.MATRIX, layers, c.hiddenDim(), dim));
    t.add(new Tensor("w2", Kind.MATRIX, layers, dim, c.hiddenDim()));
    t.add(new Tensor("w3", Kind.MATRIX, layers, c.hiddenDim(), dim));
    t.add(new Tensor("rms_final", Kind.NORM, 1, 1, dim));
    // freq_cis_real then freq_cis_imag, seq_len * head_size / 2 floats each
    t.add(new Tensor("freq_cis", Kind.ROPE, 1, c.seqLen(), c.headSize()));
    if (!c.sharedClassifier()) {
      t.add(new Tensor("wcls", Kind.MATRIX, 1, c.vocabSize(), dim));
    }
    return List.copyOf(t);
  }

  /** The exact size of a checkpoint of shape {@code c}. */
  public static long fileSize(LlamaConfig c) {
    long floats = 0;
    for (Tensor t : tensors(c)) {
      floats += t.floats();
    }
    return HEADER_BYTES + floats * Float.BYTES;
  }

  /**
   * Reads and checks the header of an open checkpoint of {@code size} bytes.
   *
   * @throws ModelFormatException naming the problem when the header is implausible or the file
   *     size does not match the shape it declares
   */
  static LlamaConfig readHeader(FileChannel channel, Path path) throws IOException {
    long size = channel.size();
    if (size < HEADER_BYTES) {
      throw new ModelFormatException(path + ": " + size + " bytes is too short for a llama2.c "
          + "checkpoint header (" + HEADER_BYTES + " bytes)");
    }
    ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
    channel.read(header, 0);
    if (header.getInt(0) == NEW_FORMAT_MAGIC) {
      throw new ModelFormatException(path + ": this is a llama2.c version-1/2 export (magic "
          + "'ak42'); export the legacy (version 0) format instead");
    }
    int vocab = header.getInt(20);
    LlamaConfig config = new LlamaConfig(header.getInt(0), header.getInt(4), header.getInt(8),
        header.getInt(12), header.getInt(16), Math.abs(vocab), header.getInt(24), vocab > 0);
    config.validate(path + " (read as a llama2.c checkpoint)");
    long expected = fileSize(config);
    if (size != expected) {
      throw new ModelFormatException(path + ": file is " + size + " bytes but the header "
          + config + " needs exactly " + expected + " bytes"
          + (size < expected ? " (truncated?)" : " (trailing data: wrong header?)"));
    }
    return config;
  }

  /** Whether {@code path} is a file whose header and size make a valid checkpoint. */
  static boolean recognizes(Path path) {
    if (!Files.isRegularFile(path)) {
      return false;
    }
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
      readHeader(channel, path);
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /** Writes the values of one tensor: exactly {@link Tensor#floats()} of them, in order. */
  @FunctionalInterface
  public interface TensorValues {
    void write(Tensor tensor, FloatSink out) throws IOException;
  }

  /**
   * Writes a checkpoint of shape {@code config} to {@code path} (replacing any file there),
   * asking {@code values} for each tensor in file order.
   */
  public static void write(Path path, LlamaConfig config, TensorValues values)
      throws IOException {
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE,
        StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
      FloatSink out = new FloatSink(channel);
      for (int v : new int[] {config.dim(), config.hiddenDim(), config.layers(), config.heads(),
          config.kvHeads(), config.sharedClassifier() ? config.vocabSize() : -config.vocabSize(),
          config.seqLen()}) {
        out.putInt(v);
      }
      for (Tensor tensor : tensors(config)) {
        long before = out.written();
        values.write(tensor, out);
        long wrote = (out.written() - before) / Float.BYTES;
        if (wrote != tensor.floats()) {
          throw new IllegalStateException(tensor.name() + ": wrote " + wrote + " of "
              + tensor.floats() + " values");
        }
      }
      out.flush();
    }
  }

  /**
   * Random weights for tests and demos: every matrix uniform in {@code ±0.5 / sqrt(fan_in)}
   * (fan_in = its row length), drawn from {@code random} in file order, so the same seed gives
   * the same bytes; norm weights 1; the unused RoPE tables 0.
   */
  public static TensorValues randomWeights(Random random) {
    return (tensor, out) -> {
      switch (tensor.kind()) {
        case MATRIX -> {
          float scale = (float) (0.5 / Math.sqrt(tensor.cols()));
          for (long i = 0; i < tensor.floats(); i++) {
            out.putFloat((random.nextFloat() * 2f - 1f) * scale);
          }
        }
        case NORM -> out.fill(1f, tensor.floats());
        case ROPE -> out.fill(0f, tensor.floats());
      }
    };
  }

  /** A buffered little-endian writer of the file's values. */
  public static final class FloatSink {
    private final FileChannel channel;
    private final ByteBuffer buffer = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
    private long written;

    FloatSink(FileChannel channel) {
      this.channel = channel;
    }

    public void putFloat(float value) throws IOException {
      ensureRoom();
      buffer.putFloat(value);
      written += Float.BYTES;
    }

    /** {@code count} copies of {@code value}. */
    public void fill(float value, long count) throws IOException {
      for (long i = 0; i < count; i++) {
        putFloat(value);
      }
    }

    void putInt(int value) throws IOException {
      ensureRoom();
      buffer.putInt(value);
    }

    long written() {
      return written;
    }

    private void ensureRoom() throws IOException {
      if (buffer.remaining() < Float.BYTES) {
        flush();
      }
    }

    void flush() throws IOException {
      buffer.flip();
      while (buffer.hasRemaining()) {
        channel.write(buffer);
      }
      buffer.clear();
    }
  }
}
