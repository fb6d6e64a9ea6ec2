package io.duet.engine.safetensors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Writes {@code .safetensors} files (for tests and generated demo checkpoints): tensors as raw
 * little-endian bytes under a JSON header, in the order added. The quantizing helpers replace
 * the values given by what the stored ones stand for, so that a test's reference computes with
 * the very weights the engine reads. Holds every tensor in memory until {@link #write}.
 */
public final class SafetensorsWriter {

  private static final ObjectMapper JSON = new ObjectMapper();
  /** Largest finite e4m3fn magnitude. */
  public static final float E4M3_MAX = 448f;

  private final Map<String, Tensor> tensors = new LinkedHashMap<>();

  private record Tensor(String dtype, long[] shape, byte[] data) {
  }

  /** Adds a tensor of raw bytes. */
  public SafetensorsWriter raw(String name, String dtype, byte[] data, long... shape) {
    tensors.put(name, new Tensor(dtype, shape, data));
    return this;
  }

  public SafetensorsWriter f32(String name, float[] values, long... shape) {
    ByteBuffer out = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    out.asFloatBuffer().put(values);
    return raw(name, "F32", out.array(), shape);
  }

  /** Adds {@code values} rounded to bfloat16 (to nearest, ties to even), and rounds them too. */
  public SafetensorsWriter bf16(String name, float[] values, long... shape) {
    ByteBuffer out = ByteBuffer.allocate(values.length * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < values.length; i++) {
      int bits = Float.floatToIntBits(values[i]);
      int rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
      out.putShort(i * 2, (short) rounded);
      values[i] = Float.intBitsToFloat(rounded << 16);
    }
    return raw(name, "BF16", out.array(), shape);
  }

  /**
   * Adds a {@code rows x cols} matrix as DeepSeek stores it in FP8: per block of
   * {@code blockRows x blockCols}, a float32 scale {@code amax / 448} in {@code NAME_scale_inv}
   * and the values divided by it, rounded to the nearest e4m3fn number. Replaces {@code values}
   * by what they stand for: the rounded number times the scale.
   */
  public SafetensorsWriter fp8(String name, float[] values, int rows, int cols, int blockRows,
      int blockCols) {
    int scaleRows = (rows + blockRows - 1) / blockRows;
    int scaleCols = (cols + blockCols - 1) / blockCols;
    float[] scales = new float[scaleRows * scaleCols];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        int s = r / blockRows * scaleCols + c / blockCols;
        scales[s] = Math.max(scales[s], Math.abs(values[r * cols + c]) / E4M3_MAX);
      }
    }
    byte[] data = new byte[rows * cols];
    for (int r = 0; r < rows; r++) {
      for (int c = 0; c < cols; c++) {
        int i = r * cols + c;
        float scale = scales[r / blockRows * scaleCols + c / blockCols];
        int code = nearestE4m3(scale == 0 ? 0 : values[i] / scale);
        data[i] = (byte) code;
        values[i] = e4m3(code) * scale;
      }
    }
    raw(name, "F8_E4M3", data, rows, cols);
    return f32(name + "_scale_inv", scales, scaleRows, scaleCols);
  }

  /** The value of an e4m3fn code, from the format's definition. */
  public static float e4m3(int code) {
    int sign = (code & 0x80) != 0 ? -1 : 1;
    int exponent = (code >> 3) & 0xf;
    int mantissa = code & 7;
    double value = exponent == 0 ? mantissa / 8.0 * Math.pow(2, -6)
        : (1 + mantissa / 8.0) * Math.pow(2, exponent - 7);
    return (float) (sign * value);
  }

  /** The e4m3fn code nearest to {@code value} (within the format's range, halves rounded up). */
  static int nearestE4m3(float value) {
    float magnitude = Math.min(Math.abs(value), E4M3_MAX);
    int sign = value < 0 ? 0x80 : 0;
    int exponent = Math.max(Math.getExponent(magnitude), -6);
    if (magnitude == 0) {
      return sign;
    }
    // Steps of 2^(exponent - 3) from 2^exponent; below 2^-6 the subnormal steps of 2^-9.
    int steps = Math.round(magnitude / (float) Math.scalb(1.0, exponent - 3));
    int code = exponent == -6 && steps < 8 ? steps : ((exponent + 7) << 3) + steps - 8;
    return sign | code;
  }

  /** Writes the file: u64 header length, the JSON header, then the tensors in order added. */
  public void write(Path file) throws IOException {
    ObjectNode header = JSON.createObjectNode();
    header.putObject("__metadata__").put("format", "pt");
    long offset = 0;
    for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
      Tensor t = e.getValue();
      ObjectNode entry = header.putObject(e.getKey());
      entry.put("dtype", t.dtype());
      var shape = entry.putArray("shape");
      for (long d : t.shape()) {
        shape.add(d);
      }
      entry.putArray("data_offsets").add(offset).add(offset + t.data().length);
      offset += t.data().length;
    }
    writeRaw(file, JSON.writeValueAsString(header), tensors);
  }

  /** Writes {@code headerJson} as the header, whatever it says, then the tensors' bytes. */
  public static void writeRaw(Path file, String headerJson) throws IOException {
    writeRaw(file, headerJson, Map.of());
  }

  private static void writeRaw(Path file, String headerJson, Map<String, Tensor> tensors)
      throws IOException {
    byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    length.putLong(header.length);
    bytes.write(length.array());
    bytes.write(header);
    for (Tensor t : tensors.values()) {
      bytes.write(t.data());
    }
    try (OutputStream out = Files.newOutputStream(file)) {
      bytes.writeTo(out);
    }
  }
}
