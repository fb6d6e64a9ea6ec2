package io.duet.proxy.it;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.llama.Llama2cCheckpoint;
import io.duet.engine.llama.LlamaConfig;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A model the integration tests write: random weights with aidreams260K's vocabulary (so its
 * tokenizer serves it) and a context of {@value #SEQ_LEN} tokens, whose generation to the end
 * takes seconds where aidreams260K's takes a tenth of one. A request of it that ignores the end
 * of sequence runs long enough to be stopped, or to outlive a process, mid-generation.
 */
final class LongContextModel {

  static final int SEQ_LEN = 4096;
  /** The name the tests serve it under. */
  static final String NAME = "longctx";
  private static final LlamaConfig CONFIG = new LlamaConfig(128, 384, 4, 4, 4, 512, SEQ_LEN,
      true);

  private LongContextModel() {
  }

  /** A topology of packaged JVMs serving this model, and the engine's text of each request. */
  record Topology(TopologyCluster cluster, Map<String, String> expected) {
  }

  /**
   * Writes this model and a topology of {@code instances} serving it (see
   * {@link TopologyCluster}) to a new folder of the build's, and computes the engine's text of
   * each of {@code requests}; starts nothing.
   */
  static Topology topology(ChildJvms jvms, String folderPrefix, List<String> instances,
      String settings, List<JsonObject> requests) throws Exception {
    Path repo = ItPaths.repoDir();
    Path tokenizer = ItPaths.sharedModel(repo, "aidreams260K.tok512.bin");
    Path work = Files.createTempDirectory(ItPaths.targetDir(), folderPrefix);
    Path model = write(work.resolve(NAME + ".bin"));
    TopologyCluster cluster = new TopologyCluster(jvms, work, instances, NAME,
        List.of("--model", model.toString(), "--tokenizer", tokenizer.toString()), settings);
    return new Topology(cluster, referenceTexts(model, tokenizer, requests));
  }

  /**
   * The greedy requests of every prompt for every length, ignoring the end of sequence so that
   * each generates exactly its {@code max_tokens}.
   */
  static List<JsonObject> greedyRequests(List<String> prompts, List<Integer> lengths) {
    List<JsonObject> requests = new ArrayList<>();
    for (String prompt : prompts) {
      for (int length : lengths) {
        requests.add(new JsonObject().put("model", NAME).put("prompt", prompt)
            .put("temperature", 0).put("max_tokens", length).put("ignore_eos", true));
      }
    }
    return requests;
  }

  /** The engine's text of each request, by the request's JSON, computed in this JVM. */
  private static Map<String, String> referenceTexts(Path model, Path tokenizer, List<JsonObject> requests)
      throws IOException {
    Map<String, String> texts = new ConcurrentHashMap<>();
    try (Engine reference = Engine.open(new EngineOptions().modelPath(model)
        .tokenizerPath(tokenizer).kvBlocks(300).threads(1))) {
      for (JsonObject request : requests) {
        texts.put(request.encode(), ReferenceTexts.of(reference, request));
      }
    }
    return texts;
  }

  /** Writes the checkpoint to {@code file}, the same weights every time. */
  static Path write(Path file) throws IOException {
    Llama2cCheckpoint.write(file, CONFIG, Llama2cCheckpoint.randomWeights(new Random(20_240_607L)));
    return file;
  }
}
