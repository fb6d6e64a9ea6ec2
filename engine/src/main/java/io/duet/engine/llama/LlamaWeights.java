package io.duet.engine.llama;

import io.duet.engine.ModelFormatException;
import io.duet.engine.WeightStorage;
import io.duet.engine.compute.WeightArena;
import io.duet.engine.compute.WeightMatrix;
import io.duet.engine.safetensors.SafetensorsCheckpoint;
import io.duet.engine.spi.ContentHash;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The weights of a Llama-architecture model opened for inference: a llama2.c checkpoint
 * ({@link Llama2cCheckpoint}) or a Hugging Face safetensors directory. By default float32 weights
 * stay in the memory-mapped file (off the Java heap), so opening costs a header read whatever
 * the model's size; pages are read on first use. {@link WeightStorage#HUGE_PAGES} copies them off
 * the heap instead; other dtypes are converted to float32 off the heap at load.
 */
public final class LlamaWeights {

  private final Path path;
  private final List<Path> files;
  private final LlamaConfig config;
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

    /** Its seven matrices: the attention's four, then the feed-forward's three. */
    public List<WeightMatrix> matrices() {
      return List.of(wq, wk, wv, wo, w1, w2, w3);
    }
  }

  private LlamaWeights(Path path, List<Path> files, LlamaConfig config, long fileSize,
      WeightMatrix tokenEmbedding, WeightMatrix classifier, Layer[] layers, float[] finalNorm,
      String storage) {
    this.path = path;
    this.files = List.copyOf(files);
    this.config = config;
    this.fileSize = fileSize;
    boolean resident = matrixBytes(tokenEmbedding, classifier, layers)
        <= WeightMatrix.CACHE_RESIDENT_MODEL_BYTES;
    this.tokenEmbedding = resident ? tokenEmbedding.cacheResident() : tokenEmbedding;
    this.classifier = classifier == tokenEmbedding ? this.tokenEmbedding
        : resident ? classifier.cacheResident() : classifier;
    this.layers = resident ? residentLayers(layers) : layers;
    this.finalNorm = finalNorm;
    this.storage = storage;
  }

  /** The bytes of every matrix the forward pass reads (a shared classifier once). */
  private static long matrixBytes(WeightMatrix embedding, WeightMatrix classifier,
      Layer[] layers) {
    long bytes = embedding.bytes() + (classifier == embedding ? 0 : classifier.bytes());
    for (Layer l : layers) {
      for (WeightMatrix w : l.matrices()) {
        bytes += w.bytes();
      }
    }
    return bytes;
  }

  private static Layer[] residentLayers(Layer[] layers) {
    Layer[] resident = new Layer[layers.length];
    for (int i = 0; i < layers.length; i++) {
      Layer l = layers[i];
      resident[i] = new Layer(l.attentionNorm(), l.wq().cacheResident(), l.wk().cacheResident(),
          l.wv().cacheResident(), l.wo().cacheResident(), l.ffnNorm(), l.w1().cacheResident(),
          l.w2().cacheResident(), l.w3().cacheResident());
    }
    return resident;
  }

  /** Opens a checkpoint with its weights {@link WeightStorage#MAPPED}. */
  public static LlamaWeights load(Path path) throws IOException {
    return load(path, WeightStorage.MAPPED);
  }

  /**
   * Opens a checkpoint. Fails with a {@link io.duet.engine.ModelFormatException} naming the
   * problem when the header is implausible or the file size does not match the shape the
   * header declares.
   */
  public static LlamaWeights load(Path path, WeightStorage storage) throws IOException {
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
      LlamaConfig c = Llama2cCheckpoint.readHeader(channel, path);
      long size = channel.size();
      WeightArena arena = storage == WeightStorage.HUGE_PAGES ? new WeightArena(size) : null;
      Mapper m = new Mapper(channel, Llama2cCheckpoint.HEADER_BYTES, arena);
      Map<String, WeightMatrix[]> matrices = new HashMap<>();
      Map<String, float[][]> norms = new HashMap<>();
      for (Llama2cCheckpoint.Tensor t : Llama2cCheckpoint.tensors(c)) {
        switch (t.kind()) {
          case MATRIX -> matrices.put(t.name(), m.matrices(t.count(), t.rows(), t.cols()));
          case NORM -> norms.put(t.name(), m.vectors(t.count(), t.cols()));
          case ROPE -> m.skip(t.floats() * Float.BYTES);
        }
      }
      WeightMatrix embedding = matrices.get("token_embedding")[0];
      WeightMatrix classifier = c.sharedClassifier() ? embedding : matrices.get("wcls")[0];
      Layer[] layers = new Layer[c.layers()];
      for (int i = 0; i < layers.length; i++) {
        layers[i] = new Layer(norms.get("rms_att")[i], matrices.get("wq")[i],
            matrices.get("wk")[i], matrices.get("wv")[i], matrices.get("wo")[i],
            norms.get("rms_ffn")[i], matrices.get("w1")[i], matrices.get("w2")[i],
            matrices.get("w3")[i]);
      }
      String where = arena == null ? "mapped from the file" : arena.describe();
      return new LlamaWeights(path, List.of(path), c, size, embedding, classifier, layers,
          norms.get("rms_final")[0], where);
    }
  }

  /**
   * Reads a Hugging Face Llama checkpoint under its tensor names
   * ({@code model.layers.N.self_attn.q_proj.weight}...). HF stores each head's query and key
   * rows permuted for its rotate-half RoPE (the first half of a head's rows, then the second);
   * they are put back in the interleaved order this forward pass rotates, which gives the same
   * attention.
   */
  public static LlamaWeights fromHuggingFace(SafetensorsCheckpoint checkpoint, LlamaConfig c)
      throws IOException {
    int dim = c.dim();
    int kvDim = c.kvDim();
    Layer[] layers = new Layer[c.layers()];
    for (int l = 0; l < layers.length; l++) {
      String at = "model.layers." + l + ".";
      layers[l] = new Layer(checkpoint.vector(at + "input_layernorm.weight", dim),
          interleavedHeads(checkpoint.floats(at + "self_attn.q_proj.weight", dim, dim), c.heads(),
              c.headSize(), dim),
          interleavedHeads(checkpoint.floats(at + "self_attn.k_proj.weight", kvDim, dim),
              c.kvHeads(), c.headSize(), dim),
          checkpoint.matrix(at + "self_attn.v_proj.weight", kvDim, dim),
          checkpoint.matrix(at + "self_attn.o_proj.weight", dim, dim),
          checkpoint.vector(at + "post_attention_layernorm.weight", dim),
          checkpoint.matrix(at + "mlp.gate_proj.weight", c.hiddenDim(), dim),
          checkpoint.matrix(at + "mlp.down_proj.weight", dim, c.hiddenDim()),
          checkpoint.matrix(at + "mlp.up_proj.weight", c.hiddenDim(), dim));
    }
    WeightMatrix embedding = checkpoint.matrix("model.embed_tokens.weight", c.vocabSize(), dim);
    WeightMatrix classifier = c.sharedClassifier() ? embedding
        : checkpoint.matrix("lm_head.weight", c.vocabSize(), dim);
    long size = 0;
    for (Path file : checkpoint.files()) {
      size += Files.size(file);
    }
    return new LlamaWeights(checkpoint.directory(), checkpoint.files(), c, size, embedding,
        classifier, layers, checkpoint.vector("model.norm.weight", dim),
        checkpoint.storageDescription() + ", query and key rows reordered off the heap");
  }

  /**
   * HF's rows of each head, {@code [x0 x2 x4 ... | x1 x3 x5 ...]}, back in llama2.c's order
   * {@code [x0 x1 x2 x3 ...]}: row {@code 2i} of a head is HF's row {@code i}, row {@code 2i+1}
   * HF's row {@code half + i}.
   */
  private static WeightMatrix interleavedHeads(float[] rows, int heads, int headSize, int cols) {
    int half = headSize / 2;
    ByteBuffer out = ByteBuffer.allocateDirect(rows.length * Float.BYTES)
        .order(ByteOrder.LITTLE_ENDIAN);
    FloatBuffer floats = out.asFloatBuffer();
    for (int h = 0; h < heads; h++) {
      for (int r = 0; r < headSize; r++) {
        int hfRow = h * headSize + (r % 2 == 0 ? r / 2 : half + r / 2);
        floats.put(rows, hfRow * cols, cols);
      }
    }
    return new WeightMatrix(out, heads * headSize, cols);
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

  /** The checkpoint: its file, or the directory of its safetensors. */
  public Path path() {
    return path;
  }

  public LlamaConfig config() {
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
   * SHA-256 of the whole checkpoint (its files), as lowercase hex. Computed on first call (it reads
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
    return ContentHash.sha256(files);
  }
}
