package io.duet.engine.llama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.ModelFormatException;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.engine.TestFiles;
import io.duet.engine.safetensors.SafetensorsCheckpoint;
import io.duet.engine.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hugging Face Llama checkpoints: stories260K (grouped-query attention) converted to HF's layout,
 * tensor names and rotate-half query and key rows, generates what the llama2.c file generates,
 * token for token, in float32 and, against a llama2.c file of the same rounded weights, in
 * bfloat16.
 */
class HfLlamaTest {

  private static final Path STORIES = TestFiles.shared("models/stories260K.bin");
  private static final int[] PROMPT = {1, 403, 407, 261, 378};
  private static final int TOKENS = 120;

  @TempDir
  Path dir;

  @Test
  void aFloat32ConversionGeneratesTheLlama2cFilesTokensAndIsRecognizedAsLlama() throws Exception {
    Path hf = Files.createDirectories(dir.resolve("hf-f32"));
    convert(readLlama2c(STORIES), hf, false);
    try (Engine engine = Engine.open(options(hf))) {
      assertEquals(HfLlamaArchitecture.NAME, engine.info().architecture());
      assertArrayEquals(generate(options(STORIES)), generate(engine));
    }
  }

  @Test
  void aBfloat16ConversionGeneratesWhatALlama2cFileOfTheSameRoundedWeightsGenerates()
      throws Exception {
    Map<String, float[][]> weights = readLlama2c(STORIES);
    Path hf = Files.createDirectories(dir.resolve("hf-bf16"));
    convert(weights, hf, true); // rounds weights to bfloat16 in place
    Path rounded = dir.resolve("rounded.bin");
    LlamaConfig c = config();
    Llama2cCheckpoint.write(rounded, c, (tensor, out) -> {
      float[][] values = weights.get(tensor.name());
      for (int i = 0; i < tensor.count(); i++) {
        for (float v : values == null ? new float[tensor.rows() * tensor.cols()] : values[i]) {
          out.putFloat(v);
        }
      }
    });
    int[] expected = generate(options(rounded));
    try (Engine engine = Engine.open(options(hf))) {
      assertArrayEquals(expected, generate(engine));
    }
    assertTrue(!java.util.Arrays.equals(expected, generate(options(STORIES))),
        "rounding to bfloat16 changed the text: the comparison can tell the weights apart");
  }

  @Test
  void ropeScalingIsRefusedNamingTheFileAndTheSetting() throws Exception {
    ObjectNode json = hfConfig(config());
    json.putObject("rope_scaling").put("rope_type", "llama3").put("factor", 8.0);
    ModelFormatException e = assertThrows(ModelFormatException.class,
        () -> LlamaConfig.fromHuggingFace(json, "x/config.json"));
    assertTrue(e.getMessage().startsWith("x/config.json: unsupported config: rope_scaling"),
        e.getMessage());
  }

  // ---- conversion -----------------------------------------------------------------------------

  private static LlamaConfig config() throws IOException {
    try (FileChannel channel = FileChannel.open(STORIES, StandardOpenOption.READ)) {
      return Llama2cCheckpoint.readHeader(channel, STORIES);
    }
  }

  /** Every tensor of a llama2.c file, by its name: one array per layer (or one). */
  private static Map<String, float[][]> readLlama2c(Path file) throws IOException {
    LlamaConfig c = config();
    Map<String, float[][]> tensors = new HashMap<>();
    try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
      FloatBuffer floats = channel.map(FileChannel.MapMode.READ_ONLY,
          Llama2cCheckpoint.HEADER_BYTES, channel.size() - Llama2cCheckpoint.HEADER_BYTES)
          .order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
      for (Llama2cCheckpoint.Tensor t : Llama2cCheckpoint.tensors(c)) {
        float[][] values = new float[t.count()][(int) (t.floats() / t.count())];
        for (float[] v : values) {
          floats.get(v);
        }
        if (t.kind() != Llama2cCheckpoint.Kind.ROPE) {
          tensors.put(t.name(), values);
        }
      }
    }
    return tensors;
  }

  /**
   * Writes {@code weights} as HF does: its names, query and key rows of each head permuted to
   * rotate-half order (HF's conversion script); in bfloat16 the values are rounded in place.
   */
  private static void convert(Map<String, float[][]> weights, Path hf, boolean bf16)
      throws IOException {
    LlamaConfig c = config();
    SafetensorsWriter out = new SafetensorsWriter();
    Writer put = (name, values, shape) -> {
      if (bf16) {
        out.bf16(name, values, shape);
      } else {
        out.f32(name, values, shape);
      }
    };
    put.add("model.embed_tokens.weight", weights.get("token_embedding")[0], c.vocabSize(),
        c.dim());
    put.add("model.norm.weight", weights.get("rms_final")[0], c.dim());
    for (int l = 0; l < c.layers(); l++) {
      String at = "model.layers." + l + ".";
      put.add(at + "input_layernorm.weight", weights.get("rms_att")[l], c.dim());
      put.add(at + "post_attention_layernorm.weight", weights.get("rms_ffn")[l], c.dim());
      float[] q = rotateHalf(weights.get("wq")[l], c.heads(), c.headSize(), c.dim());
      float[] k = rotateHalf(weights.get("wk")[l], c.kvHeads(), c.headSize(), c.dim());
      put.add(at + "self_attn.q_proj.weight", q, c.dim(), c.dim());
      put.add(at + "self_attn.k_proj.weight", k, c.kvDim(), c.dim());
      // rounded in the HF order: put the rounded values back where llama2.c keeps them
      weights.get("wq")[l] = interleaved(q, c.heads(), c.headSize(), c.dim());
      weights.get("wk")[l] = interleaved(k, c.kvHeads(), c.headSize(), c.dim());
      put.add(at + "self_attn.v_proj.weight", weights.get("wv")[l], c.kvDim(), c.dim());
      put.add(at + "self_attn.o_proj.weight", weights.get("wo")[l], c.dim(), c.dim());
      put.add(at + "mlp.gate_proj.weight", weights.get("w1")[l], c.hiddenDim(), c.dim());
      put.add(at + "mlp.down_proj.weight", weights.get("w2")[l], c.dim(), c.hiddenDim());
      put.add(at + "mlp.up_proj.weight", weights.get("w3")[l], c.hiddenDim(), c.dim());
    }
    out.write(hf.resolve("model.safetensors"));
    new ObjectMapper().writeValue(hf.resolve(SafetensorsCheckpoint.CONFIG).toFile(),
        hfConfig(c));
  }

  @FunctionalInterface
  private interface Writer {
    void add(String name, float[] values, long... shape);
  }

  private static ObjectNode hfConfig(LlamaConfig c) {
    ObjectNode json = new ObjectMapper().createObjectNode();
    json.put("model_type", "llama").put("hidden_size", c.dim())
        .put("intermediate_size", c.hiddenDim()).put("num_hidden_layers", c.layers())
        .put("num_attention_heads", c.heads()).put("num_key_value_heads", c.kvHeads())
        .put("vocab_size", c.vocabSize()).put("max_position_embeddings", c.seqLen())
        .put("tie_word_embeddings", c.sharedClassifier()).put("rms_norm_eps", 1e-5)
        .put("rope_theta", 10000.0).put("bos_token_id", 1).put("eos_token_id", 2)
        .put("hidden_act", "silu");
    return json;
  }

  /** HF's permutation: a head's even rows first, then its odd rows. */
  private static float[] rotateHalf(float[] rows, int heads, int headSize, int cols) {
    float[] out = new float[rows.length];
    for (int h = 0; h < heads; h++) {
      for (int r = 0; r < headSize; r++) {
        int to = h * headSize + (r % 2 == 0 ? r / 2 : headSize / 2 + r / 2);
        System.arraycopy(rows, (h * headSize + r) * cols, out, to * cols, cols);
      }
    }
    return out;
  }

  private static float[] interleaved(float[] rotated, int heads, int headSize, int cols) {
    float[] out = new float[rotated.length];
    for (int h = 0; h < heads; h++) {
      for (int r = 0; r < headSize; r++) {
        int from = h * headSize + (r % 2 == 0 ? r / 2 : headSize / 2 + r / 2);
        System.arraycopy(rotated, from * cols, out, (h * headSize + r) * cols, cols);
      }
    }
    return out;
  }

  // ---- generation -----------------------------------------------------------------------------

  private static EngineOptions options(Path model) {
    return new EngineOptions().modelPath(model).kvBlocks(64).threads(1);
  }

  private static int[] generate(EngineOptions options) throws Exception {
    try (Engine engine = Engine.open(options)) {
      return generate(engine);
    }
  }

  private static int[] generate(Engine engine) {
    return new OfflineGenerator(engine, 1).generate(PROMPT,
        SamplingParams.greedy(TOKENS).withIgnoreEos(true)).outputTokens();
  }
}
