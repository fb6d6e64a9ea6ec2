package io.duet.engine.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.duet.engine.ModelFormatException;
import io.duet.engine.WeightFormatMode;
import io.duet.engine.WeightStorage;
import io.duet.engine.compute.WeightArena;
import io.duet.engine.compute.WeightFormat;
import io.duet.engine.compute.WeightMatrix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * A Hugging Face checkpoint directory: {@code config.json} and the tensors of its
 * {@code *.safetensors} files (the shards {@code model.safetensors.index.json} names, else every
 * such file in the directory). Vectors and the matrices a layer rearranges are read as float32.
 *
 * <p>Matrices for the kernels stay in the memory-mapped file ({@link WeightStorage#MAPPED}), as a
 * llama2.c checkpoint's do, when they are F32, or BF16 and FP8 with
 * {@link WeightFormatMode#NATIVE}: the kernels read those formats in place. Otherwise (F16 always,
 * BF16 and FP8 with {@link WeightFormatMode#FLOAT32}, FP8 whose blocks the kernels cannot read,
 * see {@link WeightMatrix#fp8Fits}) they are converted to float32 once, at load, into off-heap
 * memory. An FP8 ({@code F8_E4M3}) tensor {@code NAME} is scaled block by block by the float32
 * tensor {@code NAME_scale_inv}, one value per block of
 * {@code quantization_config.weight_block_size} (DeepSeek-V3's 128x128) elements:
 * {@code w[r][c] = fp8[r][c] * scale_inv[r / B0][c / B1]}.
 */
public final class SafetensorsCheckpoint implements AutoCloseable {

  public static final String CONFIG = "config.json";
  private static final String INDEX = "model.safetensors.index.json";
  private static final String SCALE_SUFFIX = "_scale_inv";
  /** Elements converted per bulk read and write. */
  private static final int CONVERSION_CHUNK = 1 << 14;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final Path directory;
  private final JsonNode config;
  private final List<Path> shards;
  private final Map<String, TensorEntry> tensors;
  private final Map<Path, FileChannel> channels = new HashMap<>();
  private final WeightStorage storage;
  private final WeightFormatMode format;
  /** The bytes the matrices handed out hold, by format; for {@link #storageDescription}. */
  private final long[] heldBytes = new long[WeightFormat.values().length];
  /** What converting (or copying) every tensor would take, to size the arena. */
  private final long convertedBytes;
  /** Where converted and copied matrices go; made when the first one comes. */
  private WeightArena arena;
  private final int[] fp8BlockSize;

  private SafetensorsCheckpoint(Path directory, JsonNode config, List<Path> shards,
      Map<String, TensorEntry> tensors, WeightStorage storage, WeightFormatMode format)
      throws ModelFormatException {
    this.directory = directory;
    this.config = config;
    this.shards = List.copyOf(shards);
    this.tensors = tensors;
    this.storage = storage;
    this.format = format;
    this.fp8BlockSize = fp8BlockSize(directory, config);
    long converted = 0;
    for (TensorEntry t : tensors.values()) {
      if (!keptAsStored(t)) {
        converted += t.elements() * Float.BYTES;
      } else if (storage == WeightStorage.HUGE_PAGES) {
        converted += t.length();
      }
    }
    this.convertedBytes = converted;
  }

  /**
   * Opens the checkpoint in {@code directory}: reads {@code config.json} and every shard's
   * header. The tensors are read when asked for, matrices kept in {@code format}.
   *
   * @throws ModelFormatException naming the file when a file is missing or malformed, or a
   *     tensor appears in two shards
   */
  public static SafetensorsCheckpoint open(Path directory, WeightStorage storage,
      WeightFormatMode format) throws IOException {
    JsonNode config = readConfig(directory);
    Map<String, TensorEntry> tensors = new HashMap<>();
    List<Path> shards = shards(directory);
    for (Path shard : shards) {
      for (TensorEntry entry : SafetensorsHeader.read(shard)) {
        TensorEntry earlier = tensors.putIfAbsent(entry.name(), entry);
        if (earlier != null) {
          throw new ModelFormatException(entry.where() + ": the tensor is also in "
              + earlier.file());
        }
      }
    }
    return new SafetensorsCheckpoint(directory, config, shards, tensors, storage, format);
  }

  /**
   * Whether {@code directory} holds a {@code config.json} of {@code modelType}: false, not an
   * exception, for anything else, a missing or unreadable file included.
   */
  public static boolean hasModelType(Path directory, String modelType) {
    if (!Files.isRegularFile(directory.resolve(CONFIG))) {
      return false;
    }
    try {
      return modelType.equals(readConfig(directory).path("model_type").asText());
    } catch (IOException e) {
      return false;
    }
  }

  /** {@code config.json} of {@code directory}, parsed. */
  public static JsonNode readConfig(Path directory) throws IOException {
    Path file = directory.resolve(CONFIG);
    try {
      JsonNode config = JSON.readTree(Files.readString(file));
      if (config == null || !config.isObject()) {
        throw new ModelFormatException(file + ": not a JSON object");
      }
      return config;
    } catch (NoSuchFileException e) {
      throw new ModelFormatException(directory + ": no " + CONFIG
          + " (a Hugging Face checkpoint directory has one)");
    } catch (JsonProcessingException e) {
      throw new ModelFormatException(file + ": not valid JSON: " + e.getOriginalMessage());
    }
  }

  /** The shard files: those the index names, else every {@code *.safetensors}, sorted. */
  private static List<Path> shards(Path directory) throws IOException {
    Path index = directory.resolve(INDEX);
    TreeSet<String> names = new TreeSet<>();
    if (Files.isRegularFile(index)) {
      JsonNode weightMap;
      try {
        weightMap = JSON.readTree(Files.readString(index)).get("weight_map");
      } catch (JsonProcessingException e) {
        throw new ModelFormatException(index + ": not valid JSON: " + e.getOriginalMessage());
      }
      if (weightMap == null || !weightMap.isObject()) {
        throw new ModelFormatException(index + ": has no weight_map object");
      }
      weightMap.elements().forEachRemaining(file -> names.add(file.asText()));
    } else {
      try (Stream<Path> files = Files.list(directory)) {
        files.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".safetensors"))
            .forEach(names::add);
      }
    }
    if (names.isEmpty()) {
      throw new ModelFormatException(directory + ": no *.safetensors files");
    }
    List<Path> shards = new ArrayList<>();
    for (String name : names) {
      Path shard = directory.resolve(name);
      if (!Files.isRegularFile(shard)) {
        throw new ModelFormatException(shard + ": missing (named by " + INDEX + ")");
      }
      shards.add(shard);
    }
    return shards;
  }

  private static int[] fp8BlockSize(Path directory, JsonNode config)
      throws ModelFormatException {
    JsonNode quantization = config.get("quantization_config");
    if (quantization == null || quantization.isNull()) {
      return null;
    }
    String where = directory.resolve(CONFIG) + ": quantization_config ";
    String method = quantization.path("quant_method").asText("fp8");
    String format = quantization.path("fmt").asText("e4m3");
    if (!method.equals("fp8") || !format.equals("e4m3")) {
      throw new ModelFormatException(where + "quant_method " + method + ", fmt " + format
          + " is not supported (only fp8 e4m3 with block scales)");
    }
    JsonNode block = quantization.get("weight_block_size");
    if (block == null || !block.isArray() || block.size() != 2 || block.get(0).asInt() <= 0
        || block.get(1).asInt() <= 0) {
      throw new ModelFormatException(where + "needs weight_block_size [rows, cols], has "
          + block);
    }
    return new int[] {block.get(0).asInt(), block.get(1).asInt()};
  }

  public Path directory() {
    return directory;
  }

  /** The parsed {@code config.json}. */
  public JsonNode config() {
    return config;
  }

  /** The checkpoint's files: {@code config.json}, then the shards in name order. */
  public List<Path> files() {
    List<Path> files = new ArrayList<>();
    files.add(directory.resolve(CONFIG));
    files.addAll(shards);
    return files;
  }

  public boolean has(String name) {
    return tensors.containsKey(name);
  }

  /**
   * The header entry of {@code name}.
   *
   * @throws ModelFormatException when the checkpoint has no such tensor
   */
  public TensorEntry tensor(String name) throws ModelFormatException {
    TensorEntry entry = tensors.get(name);
    if (entry == null) {
      throw new ModelFormatException(directory + ": missing tensor " + name);
    }
    return entry;
  }

  /** A vector of {@code length} values (a norm's weights, a bias), on the heap. */
  public float[] vector(String name, int length) throws IOException {
    TensorEntry entry = checkedShape(name, length);
    float[] values = new float[length];
    decode(entry, FloatBuffer.wrap(values));
    return values;
  }

  /** A {@code rows x cols} matrix on the heap, row-major (for weights a layer rearranges). */
  public float[] floats(String name, int rows, int cols) throws IOException {
    TensorEntry entry = checkedShape(name, rows, cols);
    float[] values = new float[Math.multiplyExact(rows, cols)];
    decode(entry, FloatBuffer.wrap(values));
    return values;
  }

  /**
   * A {@code rows x cols} matrix for the kernels: in its stored format when the kernels read it
   * and the checkpoint was opened to keep it (mapped from the file unless the weights are copied
   * onto huge pages), else converted to float32 off the heap.
   */
  public WeightMatrix matrix(String name, int rows, int cols) throws IOException {
    TensorEntry entry = checkedShape(name, rows, cols);
    WeightMatrix matrix = storedMatrix(entry, rows, cols);
    if (matrix == null) {
      long bytes = (long) rows * cols * Float.BYTES;
      if (bytes > Integer.MAX_VALUE) {
        throw new ModelFormatException(entry.where() + ": " + rows + "x" + cols + " floats "
            + "exceed the 2 GiB one weight matrix can hold");
      }
      ByteBuffer converted = arena().allocate((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
      decode(entry, converted.asFloatBuffer());
      matrix = new WeightMatrix(converted, rows, cols);
    }
    heldBytes[matrix.format().ordinal()] += matrix.bytes();
    return matrix;
  }

  /** The matrix over the tensor's own bytes, or null when it is to be converted to float32. */
  private WeightMatrix storedMatrix(TensorEntry entry, int rows, int cols) throws IOException {
    if (!keptAsStored(entry)) {
      return null;
    }
    switch (type(entry)) {
      case F32:
        return new WeightMatrix(storedBytes(entry), rows, cols);
      case BF16:
        return WeightMatrix.bf16(storedBytes(entry), rows, cols);
      case F8_E4M3:
        float[] scales = fp8Scales(entry);
        return WeightMatrix.fp8Fits(scales, fp8BlockSize[1])
            ? WeightMatrix.fp8(storedBytes(entry), rows, cols, scales, fp8BlockSize[0],
                fp8BlockSize[1])
            : null;
      default:
        return null;
    }
  }

  /** Whether a matrix of {@code entry} is to stay in its stored format, FP8 block shape aside. */
  private boolean keptAsStored(TensorEntry entry) {
    String dtype = entry.dtype();
    return dtype.equals(TensorType.F32.name()) || format == WeightFormatMode.NATIVE
        && (dtype.equals(TensorType.BF16.name())
            || dtype.equals(TensorType.F8_E4M3.name()) && fp8BlockSize != null);
  }

  /** The tensor's bytes as stored: mapped, or copied onto huge pages. */
  private ByteBuffer storedBytes(TensorEntry entry) throws IOException {
    if (storage != WeightStorage.HUGE_PAGES) {
      return map(entry);
    }
    if (entry.length() > Integer.MAX_VALUE) {
      throw new ModelFormatException(entry.where() + ": " + entry.length() + " bytes exceed "
          + "the 2 GiB one weight matrix can hold");
    }
    return arena().copy(channel(entry.file()), entry.position(), (int) entry.length());
  }

  private WeightArena arena() {
    if (arena == null) {
      arena = new WeightArena(convertedBytes);
    }
    return arena;
  }

  /** Where the matrices are and the bytes they hold by format, for logs. */
  public String storageDescription() {
    StringBuilder held = new StringBuilder();
    for (WeightFormat f : WeightFormat.values()) {
      if (heldBytes[f.ordinal()] > 0) {
        held.append(held.length() == 0 ? "; matrices hold " : " + ")
            .append(megabytes(heldBytes[f.ordinal()])).append(' ').append(f);
      }
    }
    if (arena == null) {
      return "mapped from the files" + held;
    }
    if (storage == WeightStorage.HUGE_PAGES) {
      return "copied and converted as needed, " + arena.describe() + held;
    }
    return "matrices in their stored format mapped, the others converted to float32 and "
        + arena.describe() + held;
  }

  private static String megabytes(long bytes) {
    return bytes < 100_000 ? String.format("%.3f MB", bytes / 1e6)
        : String.format("%.1f MB", bytes / 1e6);
  }

  private TensorEntry checkedShape(String name, long... shape) throws ModelFormatException {
    TensorEntry entry = tensor(name);
    if (!java.util.Arrays.equals(entry.shape(), shape)) {
      throw new ModelFormatException(entry.where() + ": wrong shape " + entry.shapeText()
          + ", expected " + java.util.Arrays.toString(shape));
    }
    return entry;
  }

  private static TensorType type(TensorEntry entry) throws ModelFormatException {
    TensorType type = TensorType.named(entry.dtype());
    if (type == null) {
      throw new ModelFormatException(entry.where() + ": unknown dtype " + entry.dtype()
          + " (the engine reads F32, BF16, F16 and F8_E4M3)");
    }
    return type;
  }

  /** Writes every element of {@code entry}, as float32, to {@code out} from index 0. */
  private void decode(TensorEntry entry, FloatBuffer out) throws IOException {
    TensorType type = type(entry);
    ByteBuffer in = map(entry);
    int count = (int) entry.elements();
    switch (type) {
      case F32 -> out.put(0, in.asFloatBuffer(), 0, count);
      case BF16, F16 -> decodeHalves(type, in.asShortBuffer(), out, count);
      case F8_E4M3 -> decodeFp8(entry, in, out);
    }
  }

  /** Converts 16-bit floats in bulk chunks: a call per element would cost a bounds check each. */
  private static void decodeHalves(TensorType type, ShortBuffer in, FloatBuffer out, int count) {
    short[] halves = new short[Math.min(count, CONVERSION_CHUNK)];
    float[] floats = new float[halves.length];
    for (int from = 0; from < count; from += halves.length) {
      int n = Math.min(halves.length, count - from);
      in.get(from, halves, 0, n);
      for (int i = 0; i < n; i++) {
        floats[i] = type == TensorType.BF16 ? TensorType.bf16ToFloat(halves[i])
            : TensorType.f16ToFloat(halves[i]);
      }
      out.put(from, floats, 0, n);
    }
  }

  private void decodeFp8(TensorEntry entry, ByteBuffer in, FloatBuffer out) throws IOException {
    float[] scales = fp8Scales(entry);
    int cols = (int) entry.shape()[1];
    int blockRows = fp8BlockSize[0];
    int blockCols = fp8BlockSize[1];
    int scaleCols = (cols + blockCols - 1) / blockCols;
    byte[] codes = new byte[cols];
    float[] row = new float[cols];
    for (int r = 0; r < entry.shape()[0]; r++) {
      int scaleRow = r / blockRows * scaleCols;
      in.get(r * cols, codes, 0, cols);
      for (int c = 0; c < cols; c++) {
        row[c] = TensorType.e4m3ToFloat(codes[c]) * scales[scaleRow + c / blockCols];
      }
      out.put(r * cols, row, 0, cols);
    }
  }

  /** The block scales of an FP8 matrix, row-major, checked against its shape. */
  private float[] fp8Scales(TensorEntry entry) throws IOException {
    if (fp8BlockSize == null) {
      throw new ModelFormatException(entry.where() + ": F8_E4M3 weights need "
          + "quantization_config.weight_block_size in " + directory.resolve(CONFIG));
    }
    if (entry.shape().length != 2) {
      throw new ModelFormatException(entry.where() + ": an F8_E4M3 tensor must be a matrix, "
          + "not " + entry.shapeText());
    }
    int rows = (int) entry.shape()[0];
    int cols = (int) entry.shape()[1];
    int blockRows = fp8BlockSize[0];
    int blockCols = fp8BlockSize[1];
    int scaleRows = (rows + blockRows - 1) / blockRows;
    int scaleCols = (cols + blockCols - 1) / blockCols;
    String scaleName = entry.name() + SCALE_SUFFIX;
    if (!has(scaleName)) {
      throw new ModelFormatException(entry.where() + ": F8_E4M3 without its block scales "
          + scaleName);
    }
    return floats(scaleName, scaleRows, scaleCols);
  }

  private ByteBuffer map(TensorEntry entry) throws IOException {
    if (entry.length() > Integer.MAX_VALUE) {
      throw new ModelFormatException(entry.where() + ": " + entry.length() + " bytes exceed "
          + "the 2 GiB the engine maps as one region");
    }
    return channel(entry.file()).map(FileChannel.MapMode.READ_ONLY, entry.position(),
        entry.length()).order(ByteOrder.LITTLE_ENDIAN);
  }

  private FileChannel channel(Path file) throws IOException {
    FileChannel channel = channels.get(file);
    if (channel == null) {
      channel = FileChannel.open(file, StandardOpenOption.READ);
      channels.put(file, channel);
    }
    return channel;
  }

  /** Closes the files; matrices already mapped from them stay valid. */
  @Override
  public void close() throws IOException {
    IOException first = null;
    for (FileChannel channel : channels.values()) {
      try {
        channel.close();
      } catch (IOException e) {
        first = first == null ? e : first;
      }
    }
    channels.clear();
    if (first != null) {
      throw first;
    }
  }
}
