package io.duet.engine.safetensors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.ModelFormatException;
import io.duet.engine.WeightFormatMode;
import io.duet.engine.WeightStorage;
import io.duet.engine.compute.WeightMatrix;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading Hugging Face checkpoint directories: values of every dtype, and clear errors. */
class SafetensorsCheckpointTest {

  @TempDir
  Path dir;

  private void config(String json) throws IOException {
    Files.writeString(dir.resolve("config.json"), json);
  }

  private SafetensorsCheckpoint open() throws IOException {
    return SafetensorsCheckpoint.open(dir, WeightStorage.MAPPED, WeightFormatMode.FLOAT32);
  }

  @Test
  void fp8WeightsAreTheirE4m3ValuesTimesTheirBlockScale() throws IOException {
    config("{\"quantization_config\": {\"quant_method\": \"fp8\", \"fmt\": \"e4m3\","
        + " \"weight_block_size\": [2, 2]}}");
    // A 3x3 matrix in 2x2 blocks: scales [[0.5, 3], [0.25, 10]], the last row and column ragged.
    byte[] codes = {
        0x38, 0x40, (byte) 0xB8, // 1, 2 | -1
        0x01, 0x7E, 0x08, //        2^-9, 448 | 2^-6
        0x3C, 0x00, (byte) 0xC4}; // 1.5, 0 | -3
    new SafetensorsWriter().raw("w", "F8_E4M3", codes, 3, 3)
        .f32("w_scale_inv", new float[] {0.5f, 3f, 0.25f, 10f}, 2, 2)
        .write(dir.resolve("model.safetensors"));
    float[] expected = {
        0.5f, 1f, -3f,
        0x1p-9f * 0.5f, 224f, 0x1p-6f * 3f,
        0.375f, 0f, -30f};
    try (SafetensorsCheckpoint checkpoint = open()) {
      assertArrayEquals(expected, checkpoint.floats("w", 3, 3));
      WeightMatrix matrix = checkpoint.matrix("w", 3, 3);
      for (int i = 0; i < expected.length; i++) {
        assertEquals(expected[i], matrix.get(i / 3, i % 3), "element " + i);
      }
      assertTrue(checkpoint.storageDescription().contains("converted to float32"),
          checkpoint.storageDescription());
    }
  }

  @Test
  void halfPrecisionValuesAreExact() throws IOException {
    config("{}");
    new SafetensorsWriter()
        .raw("b", "BF16", new byte[] {(byte) 0x80, 0x3F, 0x40, (byte) 0xC0}, 2)
        .raw("h", "F16", new byte[] {0x00, 0x3C, 0x00, (byte) 0xC0, 0x01, 0x00, (byte) 0xFF,
            0x7B}, 4)
        .f32("f", new float[] {1.5f, -2.25f, 3f, 4f}, 2, 2)
        .write(dir.resolve("model.safetensors"));
    try (SafetensorsCheckpoint checkpoint = open()) {
      assertArrayEquals(new float[] {1f, -3f}, checkpoint.vector("b", 2));
      assertArrayEquals(new float[] {1f, -2f, 0x1p-24f, 65504f}, checkpoint.vector("h", 4));
      WeightMatrix f = checkpoint.matrix("f", 2, 2);
      assertEquals(-2.25f, f.get(0, 1));
      assertEquals("mapped from the files; matrices hold 0.000 MB F32",
          checkpoint.storageDescription());
    }
  }

  @Test
  void shardsAreTheFilesTheIndexNames() throws IOException {
    config("{}");
    new SafetensorsWriter().f32("a", new float[] {1f}, 1).write(dir.resolve("one.safetensors"));
    new SafetensorsWriter().f32("b", new float[] {2f}, 1).write(dir.resolve("two.safetensors"));
    new SafetensorsWriter().f32("c", new float[] {3f}, 1).write(dir.resolve("stray.safetensors"));
    Files.writeString(dir.resolve("model.safetensors.index.json"),
        "{\"weight_map\": {\"a\": \"one.safetensors\", \"b\": \"two.safetensors\"}}");
    try (SafetensorsCheckpoint checkpoint = open()) {
      assertArrayEquals(new float[] {2f}, checkpoint.vector("b", 1));
      assertTrue(!checkpoint.has("c"), "a file the index does not name is not read");
      assertEquals(3, checkpoint.files().size());
    }
    Files.writeString(dir.resolve("model.safetensors.index.json"),
        "{\"weight_map\": {\"a\": \"one.safetensors\", \"b\": \"gone.safetensors\"}}");
    assertError("gone.safetensors: missing (named by model.safetensors.index.json)", this::open);
  }

  @Test
  void malformedHeadersAreRefusedNamingTheFile() throws IOException {
    config("{}");
    Path file = dir.resolve("model.safetensors");
    SafetensorsWriter.writeRaw(file, "{not json");
    assertError(file + ": malformed safetensors header: the header is not JSON", this::open);
    Files.write(file, new byte[] {(byte) 0xFF, (byte) 0xFF, 0, 0, 0, 0, 0, 0, '{', '}'});
    assertError(file + ": malformed safetensors header: header length 65535 does not fit",
        this::open);
    SafetensorsWriter.writeRaw(file, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2],"
        + " \"data_offsets\": [0, 8]}}");
    assertError("tensor w in " + file + ": data_offsets [0, 8] lie outside the 0 data bytes",
        this::open);
    SafetensorsWriter.writeRaw(file, "{\"w\": {\"shape\": [2], \"data_offsets\": [0, 0]}}");
    assertError("tensor w in " + file + ": malformed header entry", this::open);
    new SafetensorsWriter().raw("w", "F32", new byte[12], 2, 2).write(file);
    assertError("tensor w in " + file + ": shape [2, 2] of F32 needs 16 bytes, but its "
        + "data_offsets span 12", this::open);
  }

  @Test
  void missingTensorsWrongShapesAndUnknownTypesAreNamed() throws IOException {
    config("{}");
    Path file = dir.resolve("model.safetensors");
    new SafetensorsWriter().f32("w", new float[9], 3, 3)
        .raw("ids", "I64", new byte[16], 2)
        .raw("q", "F8_E4M3", new byte[4], 2, 2)
        .write(file);
    try (SafetensorsCheckpoint checkpoint = open()) {
      assertError(dir + ": missing tensor lm_head.weight",
          () -> checkpoint.matrix("lm_head.weight", 3, 3));
      assertError("tensor w in " + file + ": wrong shape [3, 3], expected [3, 4]",
          () -> checkpoint.matrix("w", 3, 4));
      assertError("tensor ids in " + file + ": unknown dtype I64", () -> checkpoint.vector("ids",
          2));
      assertError("tensor q in " + file + ": F8_E4M3 weights need "
          + "quantization_config.weight_block_size", () -> checkpoint.matrix("q", 2, 2));
    }
    config("{\"quantization_config\": {\"weight_block_size\": [128, 128]}}");
    try (SafetensorsCheckpoint checkpoint = open()) {
      assertError("tensor q in " + file + ": F8_E4M3 without its block scales q_scale_inv",
          () -> checkpoint.matrix("q", 2, 2));
    }
    config("{\"quantization_config\": {\"quant_method\": \"awq\"}}");
    assertError("quant_method awq, fmt e4m3 is not supported", this::open);
    Files.delete(dir.resolve("config.json"));
    assertError(dir + ": no config.json", this::open);
  }

  private interface Action {
    Object run() throws IOException;
  }

  private static void assertError(String expected, Action action) {
    ModelFormatException e = assertThrows(ModelFormatException.class, action::run);
    assertTrue(e.getMessage().contains(expected), "expected '" + expected + "' in: "
        + e.getMessage());
  }
}
