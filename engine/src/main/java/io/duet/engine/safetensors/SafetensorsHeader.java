package io.duet.engine.safetensors;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.duet.engine.ModelFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Reads the header of one {@code .safetensors} file: a little-endian u64 N, then N bytes of JSON
 * mapping each tensor name to its {@code dtype}, {@code shape} and {@code data_offsets} (begin
 * and end, relative to the data that follows the header), plus an optional
 * {@code __metadata__}.
 */
final class SafetensorsHeader {

  /** Far above any real header (DeepSeek-V3's shards have a few hundred KB). */
  private static final long MAX_HEADER_BYTES = 100L << 20;
  private static final ObjectMapper JSON = new ObjectMapper();

  private SafetensorsHeader() {
  }

  /**
   * The tensors of {@code file}, each checked to lie inside the file and, for the element types
   * the engine knows, to have exactly the bytes its shape needs.
   *
   * @throws ModelFormatException naming the file (and tensor) when the header is malformed
   */
  static List<TensorEntry> read(Path file) throws IOException {
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = channel.size();
      if (size < Long.BYTES) {
        throw malformed(file, "the file has " + size + " bytes, fewer than the 8-byte header "
            + "length");
      }
      ByteBuffer lengthBytes = ByteBuffer.allocate(Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
      readFully(channel, lengthBytes, 0, file);
      long headerBytes = lengthBytes.getLong(0);
      if (headerBytes <= 0 || headerBytes > MAX_HEADER_BYTES
          || headerBytes > size - Long.BYTES) {
        throw malformed(file, "header length " + headerBytes + " does not fit a file of "
            + size + " bytes");
      }
      ByteBuffer json = ByteBuffer.allocate((int) headerBytes);
      readFully(channel, json, Long.BYTES, file);
      JsonNode root;
      try {
        root = JSON.readTree(new String(json.array(), StandardCharsets.UTF_8).trim());
      } catch (JsonProcessingException e) {
        throw malformed(file, "the header is not JSON: " + e.getOriginalMessage());
      }
      if (root == null || !root.isObject()) {
        throw malformed(file, "the header is not a JSON object");
      }
      long dataStart = Long.BYTES + headerBytes;
      List<TensorEntry> tensors = new ArrayList<>();
      Iterator<Map.Entry<String, JsonNode>> fields = root.fields();
      while (fields.hasNext()) {
        Map.Entry<String, JsonNode> field = fields.next();
        if (!field.getKey().equals("__metadata__")) {
          tensors.add(entry(file, field.getKey(), field.getValue(), dataStart, size));
        }
      }
      return tensors;
    }
  }

  private static TensorEntry entry(Path file, String name, JsonNode node, long dataStart,
      long fileSize) throws ModelFormatException {
    String where = "tensor " + name + " in " + file;
    JsonNode dtype = node.get("dtype");
    JsonNode shape = node.get("shape");
    JsonNode offsets = node.get("data_offsets");
    if (dtype == null || !dtype.isTextual() || shape == null || !shape.isArray()
        || offsets == null || !offsets.isArray() || offsets.size() != 2
        || !offsets.get(0).canConvertToLong() || !offsets.get(1).canConvertToLong()) {
      throw new ModelFormatException(where + ": malformed header entry " + node
          + " (needs dtype, shape and data_offsets [begin, end])");
    }
    long[] dims = new long[shape.size()];
    for (int i = 0; i < dims.length; i++) {
      JsonNode d = shape.get(i);
      if (!d.canConvertToLong() || d.asLong() < 0) {
        throw new ModelFormatException(where + ": malformed shape " + shape);
      }
      dims[i] = d.asLong();
    }
    long begin = offsets.get(0).asLong();
    long end = offsets.get(1).asLong();
    if (begin < 0 || end < begin || dataStart + end > fileSize) {
      throw new ModelFormatException(where + ": data_offsets [" + begin + ", " + end
          + "] lie outside the " + (fileSize - dataStart) + " data bytes of the file");
    }
    TensorEntry entry = new TensorEntry(name, file, dtype.asText(), dims, dataStart + begin,
        end - begin);
    TensorType type = TensorType.named(entry.dtype());
    if (type != null && entry.elements() * type.bytes() != entry.length()) {
      throw new ModelFormatException(where + ": shape " + entry.shapeText() + " of "
          + entry.dtype() + " needs " + entry.elements() * type.bytes() + " bytes, but its "
          + "data_offsets span " + entry.length());
    }
    return entry;
  }

  private static void readFully(FileChannel channel, ByteBuffer target, long position,
      Path file) throws IOException {
    while (target.hasRemaining()) {
      if (channel.read(target, position + target.position()) < 0) {
        throw malformed(file, "the file ends inside its header");
      }
    }
  }

  private static ModelFormatException malformed(Path file, String problem) {
    return new ModelFormatException(file + ": malformed safetensors header: " + problem);
  }
}
