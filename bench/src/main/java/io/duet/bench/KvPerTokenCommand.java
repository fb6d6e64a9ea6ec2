package io.duet.bench;

import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Table;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.KvLayout;
import io.duet.engine.KvSnapshot;
import io.duet.engine.Sequence;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * What one token costs in the KV cache and on the wire with multi-head latent attention, against
 * the per-head keys and values the same model would cache without it. The latent figure is the
 * engine's own {@link KvLayout}, and the bytes a prefilled prompt's export actually carries; the
 * full-head figure is {@code layers x heads x (qk_nope + qk_rope + v_head_dim)} values of the
 * same element size. DeepSeek-V3 itself (no weights needed) is the simulated engine at full KV
 * size, whose layout is DeepSeek-V3's latent and rotary key over its 61 layers.
 */
@Command(name = "kv-per-token", mixinStandardHelpOptions = true,
    description = "KV bytes per token of DeepSeek's MLA latent against a full-head cache of "
        + "the same model: DeepSeek-V3's dimensions and the checkpoints given.")
final class KvPerTokenCommand extends BenchCommand {

  /** DeepSeek-V3's {@code config.json}: what its heads would cache without the latent. */
  private static final int V3_HEADS = 128;
  private static final int V3_NOPE = 128;
  private static final int V3_ROPE = 64;
  private static final int V3_VALUE = 128;

  @Parameters(arity = "0..*", paramLabel = "MODEL", description = "DeepSeek-V3-shaped "
      + "checkpoint directories (e.g. engine.jar random-deepseek DIR)")
  List<Path> models = List.of();

  @Option(names = "--prompt-tokens", description = "prompt whose export is measured "
      + "(default: ${DEFAULT-VALUE})")
  int promptTokens = 64;

  @Override
  public Integer call() throws Exception {
    requirePositive(promptTokens, "--prompt-tokens");
    Table table = new Table(1, "model", "layers", "KV per token and layer", "MLA B/token",
        "exported B/token", "full-head B/token", "full / MLA");
    JsonArray rows = new JsonArray();
    Progress progress = progress(1 + models.size());
    progress.phase("DeepSeek-V3");
    // kv-scale 1: the simulated engine's KV at DeepSeek-V3's full size, not scaled down.
    try (Engine sim = Engine.open(new EngineOptions().architecture("sim").threads(1)
        .parameters(Map.of("kv-scale", "1")))) {
      rows.add(row(table, "DeepSeek-V3 (simulated engine)", sim, V3_HEADS,
          V3_NOPE + V3_ROPE + V3_VALUE));
    }
    for (Path model : models) {
      progress.phase(model.getFileName().toString());
      JsonObject config = new JsonObject(Files.readString(model.resolve("config.json")));
      try (Engine engine = Engine.open(new EngineOptions().modelPath(model).threads(1))) {
        rows.add(row(table, model.getFileName().toString(), engine,
            config.getInteger("num_attention_heads"), config.getInteger("qk_nope_head_dim")
                + config.getInteger("qk_rope_head_dim") + config.getInteger("v_head_dim")));
      }
    }
    progress.done();
    table.print(out());
    out().println("B = bytes; full-head: every head's key (qk_nope + qk_rope) and value "
        + "(v_head_dim) per layer, in the cache's element size; exported: a " + promptTokens
        + "-token prompt's KV export, the payload a pull moves");
    out().println(machine());
    writeJson(new JsonObject().put("promptTokens", promptTokens).put("models", rows)
        .put("machine", machineJson()));
    return 0;
  }

  private JsonObject row(Table table, String name, Engine engine, int heads,
      int valuesPerHead) {
    KvLayout layout = engine.layout();
    long latent = layout.bytesPerToken();
    long perLayerValues = layout.components().stream().mapToLong(c -> c.valuesPerToken()).sum();
    long bytesPerValue = latent / (perLayerValues * layout.layers());
    long fullHead = (long) layout.layers() * heads * valuesPerHead * bytesPerValue;
    double exported = exportedBytesPerToken(engine);
    String components = layout.components().stream()
        .map(c -> c.name() + " " + c.valuesPerToken()).reduce((a, b) -> a + " + " + b)
        .orElse("");
    table.row(name, layout.layers(), components, latent, Table.num(exported, 0), fullHead,
        Table.num((double) fullHead / latent, 1));
    return new JsonObject().put("model", name).put("layers", layout.layers())
        .put("layoutFingerprint", layout.fingerprint()).put("mlaBytesPerToken", latent)
        .put("exportedBytesPerToken", exported).put("fullHeadBytesPerToken", fullHead);
  }

  /** The payload bytes of a prefilled prompt's KV export, per token of the prompt. */
  private double exportedBytesPerToken(Engine engine) {
    int[] prompt = new int[promptTokens];
    prompt[0] = engine.info().bosToken();
    for (int i = 1; i < prompt.length; i++) {
      prompt[i] = (i * 7919) % engine.info().vocabSize();
    }
    Sequence sequence = engine.allocate(prompt);
    try {
      engine.step(List.of(sequence));
      KvSnapshot snapshot = engine.exportKv(sequence);
      long bytes = 0;
      for (int i = 0; i < snapshot.blockCount(); i++) {
        bytes += snapshot.payloadBytes(i);
      }
      return (double) bytes / snapshot.tokens().length;
    } finally {
      engine.release(sequence);
    }
  }
}
