package io.duet.engine;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;

/**
 * Writes small random llama2.c checkpoints (legacy version-0 layout) for tests.
 *
 * <p>Layout, exactly as {@code Model.expectedSize} describes it: seven little-endian int32
 * (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; vocab_size negated when
 * the classifier is not shared), then float32 tensors: token embedding, attention RMSNorm (ones),
 * wq, wk, wv, wo, FFN RMSNorm (ones), w1, w2, w3, final RMSNorm (ones), the two legacy RoPE tables
 * ({@code seqLen * headSize / 2} floats each, cos then sin), and the classifier when not shared.
 * Every weight matrix is uniform in {@code ±0.5 / sqrt(fan_in)} (fan_in = its row length), drawn
 * from one {@code java.util.Random(seed)} in file order, so the same arguments give the same bytes.
 */
public final class TestCheckpoints {

  private TestCheckpoints() {}

  /**
   * Writes a valid random checkpoint to {@code path} (replacing any file there).
   *
   * @return {@code path}, for chaining
   */
  public static Path write(Path path, int dim, int hidden, int layers, int heads, int kvHeads,
      int vocab, int seqLen, boolean shared, long seed) throws IOException {
    int headSize = dim / heads;
    int kvDim = kvHeads * headSize;
    Random random = new Random(seed);
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.CREATE,
        StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
      FloatSink out = new FloatSink(channel);
      out.putInt(dim);
      out.putInt(hidden);
      out.putInt(layers);
      out.putInt(heads);
      out.putInt(kvHeads);
      out.putInt(shared ? vocab : -vocab);
      out.putInt(seqLen);
      out.random(random, (long) vocab * dim, dim); // token embedding
      out.constant(1f, (long) layers * dim); // attention RMSNorm
      out.random(random, (long) layers * dim * dim, dim); // wq
      out.random(random, (long) layers * kvDim * dim, dim); // wk
      out.random(random, (long) layers * kvDim * dim, dim); // wv
      out.random(random, (long) layers * dim * dim, dim); // wo
      out.constant(1f, (long) layers * dim); // FFN RMSNorm
      out.random(random, (long) layers * hidden * dim, dim); // w1
      out.random(random, (long) layers * dim * hidden, hidden); // w2
      out.random(random, (long) layers * hidden * dim, dim); // w3
      out.constant(1f, dim); // final RMSNorm
      writeLegacyRope(out, seqLen, headSize);
      if (!shared) {
        out.random(random, (long) vocab * dim, dim); // classifier
      }
      out.flush();
    }
    return path;
  }

  /** llama2.c's freq_cis_real then freq_cis_imag: {@code [seqLen][headSize / 2]} each. */
  private static void writeLegacyRope(FloatSink out, int seqLen, int headSize) throws IOException {
    int half = headSize / 2;
    for (int table = 0; table < 2; table++) {
      for (int pos = 0; pos < seqLen; pos++) {
        for (int i = 0; i < half; i++) {
          double angle = pos / Math.pow(10000.0, (2.0 * i) / headSize);
          out.putFloat((float) (table == 0 ? Math.cos(angle) : Math.sin(angle)));
        }
      }
    }
    // An odd head size (which Model rejects) still gets seqLen * headSize floats in total.
    for (long i = 2L * seqLen * half; i < (long) seqLen * headSize; i++) {
      out.putFloat(0f);
    }
  }

  /** Buffered little-endian writer. */
  private static final class FloatSink {
    private final FileChannel channel;
    private final ByteBuffer buffer = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);

    FloatSink(FileChannel channel) {
      this.channel = channel;
    }

    void putInt(int value) throws IOException {
      ensure();
      buffer.putInt(value);
    }

    void putFloat(float value) throws IOException {
      ensure();
      buffer.putFloat(value);
    }

    void random(Random random, long count, int fanIn) throws IOException {
      float scale = (float) (0.5 / Math.sqrt(fanIn));
      for (long i = 0; i < count; i++) {
        putFloat((random.nextFloat() * 2f - 1f) * scale);
      }
    }

    void constant(float value, long count) throws IOException {
      for (long i = 0; i < count; i++) {
        putFloat(value);
      }
    }

    private void ensure() throws IOException {
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
