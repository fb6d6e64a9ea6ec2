package io.duet.engine.deepseek;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.duet.engine.Engine;
import io.duet.engine.ModelFormatException;
import io.duet.engine.deepseek.RandomDeepSeekCheckpoint.Storage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A DeepSeek-V3 checkpoint the engine cannot run is refused naming the file and the problem. */
class DeepSeekCheckpointErrorsTest {

  @TempDir
  Path dir;

  private String openError() {
    return assertThrows(ModelFormatException.class,
        () -> Engine.open(DeepSeekV3Test.options(dir)).close()).getMessage();
  }

  private void rewriteConfig(Consumer<ObjectNode> change) throws IOException {
    ObjectNode config = TinyDeepSeek.config(true, Storage.BF16);
    change.accept(config);
    Files.writeString(dir.resolve("config.json"), config.toString());
  }

  @Test
  void aConfigTheEngineCannotRunIsRefused() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 1);
    Map<String, Consumer<ObjectNode>> cases = Map.of(
        "unsupported config: scoring_func softmax", c -> c.put("scoring_func", "softmax"),
        "unsupported config: n_group 3 does not divide n_routed_experts 16",
        c -> c.put("n_group", 3),
        "unsupported config: rope_scaling type 'linear'",
        c -> c.with("rope_scaling").put("type", "linear"),
        "missing kv_lora_rank", c -> c.remove("kv_lora_rank"),
        "hidden_size must be an integer", c -> c.put("hidden_size", "big"));
    for (Map.Entry<String, Consumer<ObjectNode>> e : cases.entrySet()) {
      rewriteConfig(e.getValue());
      String message = openError();
      assertTrue(message.contains(dir.resolve("config.json") + ": " + e.getKey())
          || message.contains(e.getKey()) && message.contains("config.json"), message);
    }
  }

  @Test
  void aMissingTensorIsNamed() throws IOException {
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 1);
    // Renamed in place in the header (same length, so the file stays well-formed).
    String name = "model.layers.2.mlp.experts.7.up_proj.weight";
    Path file = dir.resolve("model.safetensors");
    byte[] bytes = Files.readAllBytes(file);
    String text = new String(bytes, StandardCharsets.ISO_8859_1);
    Files.write(file, text.replace(name, name.toUpperCase(Locale.ROOT))
        .getBytes(StandardCharsets.ISO_8859_1));
    assertEquals(dir + ": missing tensor " + name, openError());
  }

  @Test
  void onlyDeepSeekV3DirectoriesAreRecognized() throws IOException {
    DeepSeekV3Architecture architecture = new DeepSeekV3Architecture();
    assertFalse(architecture.recognizes(dir), "no config.json");
    Files.writeString(dir.resolve("config.json"), "{\"model_type\": \"llama\"}");
    assertFalse(architecture.recognizes(dir), "another model type");
    Files.writeString(dir.resolve("config.json"), "{\"model_type\": ");
    assertFalse(architecture.recognizes(dir), "broken JSON");
    TinyDeepSeek.write(dir, Storage.BF16, true, false, 1);
    assertTrue(architecture.recognizes(dir));
  }
}
