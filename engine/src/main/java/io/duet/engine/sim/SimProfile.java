package io.duet.engine.sim;

import io.duet.engine.ModelFormatException;
import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;

/**
 * Every parameter of the simulated engine: the model's shape and the timing model. Built-in
 * defaults, then a parameter file ({@code key = value} lines, as {@link Properties} reads them),
 * then the parameters the engine options carry, each over the one before.
 *
 * <p>The timing defaults are DeepSeek's published figures for its V3/R1 service on H800s (the
 * inference-system overview of its open-source week, day 6, 2025-03-01): 73.7k input tokens/s
 * per 8-GPU node in prefill with 56.3% of them prefix-cache hits, so about 4,030 computed tokens
 * per GPU and second; 14.8k output tokens/s per node in decode (1,850 per GPU) at 20-22 tokens/s
 * per user; MTP with a second-token acceptance of 85-90% (the DeepSeek-V3 report). See
 * docs/simulated-engine.md for how each number is derived.
 *
 * @param seed what the pseudo-text and the KV values are derived from
 * @param layers layers that store KV (DeepSeek-V3: 61)
 * @param kvScale what the 512 latent and 64 rotary-key values per token and layer are divided
 *     by: a divisor of 64, so that one token's KV is 576 / kvScale values per layer
 * @param contextLength positions a sequence may hold
 * @param routedExperts routed experts per MoE layer: DeepSeek-V3's 256 by default, which
 *     {@code decode.ep} must divide unless {@code decode.expert-slots} adds redundant copies, as
 *     DeepSeek's EP deployments place them (EP144 decode runs 256 + 32 = 288 slots, 2 per GPU)
 * @param prefillTokensPerSecond computed prompt tokens per second and accelerator
 * @param prefillAttentionNanos accelerator-nanoseconds per pair of a computed token and an
 *     earlier position it attends to (cached ones included)
 * @param prefillOverheadMillis the fixed cost of one prefill forward pass
 * @param accelerators the accelerators one instance's prefill time is divided over (its TP)
 * @param decodeStepMillis the fixed cost of one decode step of a rank
 * @param decodeSequenceMillis what each sequence of the batch adds to a decode step
 * @param decodeKvTokenNanos what each position the batch's sequences attend to adds
 * @param decodeAllToAllMillis a simulated expert-parallel all-to-all added to every decode step
 *     (0: none beyond what decodeStepMillis holds)
 * @param speculativeTokens draft tokens a decode step verifies per sequence (MTP)
 * @param acceptanceRate the chance that a draft token is accepted
 * @param timeScale what every simulated time is multiplied by (2: half speed)
 */
public record SimProfile(long seed, int layers, int kvScale, int contextLength, int routedExperts,
    double prefillTokensPerSecond, double prefillAttentionNanos, double prefillOverheadMillis,
    int accelerators, double decodeStepMillis, double decodeSequenceMillis,
    double decodeKvTokenNanos, double decodeAllToAllMillis, int speculativeTokens,
    double acceptanceRate, double timeScale) {

  /** The values of every parameter by its name in files and configurations. */
  static final Map<String, String> DEFAULTS = defaults();

  /** DeepSeek-V3's MLA: the compressed latent and the decoupled rotary key per token and layer. */
  static final int LATENT_VALUES = 512;
  static final int ROPE_KEY_VALUES = 64;

  public SimProfile {
    require(layers >= 1, "layers", layers);
    require(kvScale >= 1 && ROPE_KEY_VALUES % kvScale == 0, "kv-scale (a divisor of 64)",
        kvScale);
    require(contextLength >= 2, "context-length", contextLength);
    require(routedExperts >= 1, "routed-experts", routedExperts);
    require(prefillTokensPerSecond > 0, "prefill-tokens-per-second", prefillTokensPerSecond);
    require(prefillAttentionNanos >= 0, "prefill-attention-ns", prefillAttentionNanos);
    require(prefillOverheadMillis >= 0, "prefill-overhead-ms", prefillOverheadMillis);
    require(accelerators >= 1, "accelerators", accelerators);
    require(decodeStepMillis >= 0, "decode-step-ms", decodeStepMillis);
    require(decodeSequenceMillis >= 0, "decode-sequence-ms", decodeSequenceMillis);
    require(decodeKvTokenNanos >= 0, "decode-kv-token-ns", decodeKvTokenNanos);
    require(decodeAllToAllMillis >= 0, "decode-all-to-all-ms", decodeAllToAllMillis);
    require(speculativeTokens >= 0, "speculative-tokens", speculativeTokens);
    require(acceptanceRate >= 0 && acceptanceRate <= 1, "acceptance-rate (0 to 1)",
        acceptanceRate);
    require(timeScale >= 0, "time-scale", timeScale);
  }

  private static Map<String, String> defaults() {
    Map<String, String> d = new LinkedHashMap<>();
    d.put("seed", "20250301");
    d.put("layers", "61");
    d.put("kv-scale", "64");
    d.put("context-length", "16384");
    d.put("routed-experts", "256");
    d.put("prefill-tokens-per-second", "4030");
    d.put("prefill-attention-ns", "57");
    d.put("prefill-overhead-ms", "2");
    d.put("accelerators", "1");
    d.put("decode-step-ms", "20");
    d.put("decode-sequence-ms", "0.68");
    d.put("decode-kv-token-ns", "22");
    d.put("decode-all-to-all-ms", "0");
    d.put("speculative-tokens", "1");
    d.put("acceptance-rate", "0.85");
    d.put("time-scale", "1");
    return Map.copyOf(d);
  }

  /** The defaults alone. */
  public static SimProfile defaultProfile() {
    return of(Map.of());
  }

  /**
   * The defaults, then {@code file} (when not null), then {@code overrides}.
   *
   * @throws ModelFormatException naming the file or parameter that is unreadable, unknown or out
   *     of range
   */
  public static SimProfile load(Path file, Map<String, String> overrides)
      throws IOException {
    Map<String, String> values = new TreeMap<>();
    if (file != null) {
      Properties read = new Properties();
      try (Reader reader = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
        read.load(reader);
      } catch (IOException | IllegalArgumentException e) {
        throw new ModelFormatException("cannot read the simulated engine's parameter file "
            + file + ": " + e.getMessage());
      }
      read.stringPropertyNames().forEach(key -> values.put(key, read.getProperty(key).trim()));
    }
    values.putAll(overrides);
    try {
      return of(values);
    } catch (IllegalArgumentException e) {
      throw new ModelFormatException("simulated engine" + (file == null ? "" : " (" + file + ")")
          + ": " + e.getMessage());
    }
  }

  /** The defaults with {@code values} over them; unknown names and bad values are refused. */
  static SimProfile of(Map<String, String> values) {
    for (String key : values.keySet()) {
      if (!DEFAULTS.containsKey(key)) {
        throw new IllegalArgumentException("unknown parameter '" + key + "'; known: "
            + new TreeMap<>(DEFAULTS).keySet());
      }
    }
    Map<String, String> v = new LinkedHashMap<>(DEFAULTS);
    v.putAll(values);
    return new SimProfile(number(v, "seed", Long::parseLong), number(v, "layers",
        Integer::parseInt), number(v, "kv-scale", Integer::parseInt), number(v,
        "context-length", Integer::parseInt), number(v, "routed-experts", Integer::parseInt),
        real(v, "prefill-tokens-per-second"), real(v,
        "prefill-attention-ns"), real(v, "prefill-overhead-ms"), number(v, "accelerators",
        Integer::parseInt), real(v, "decode-step-ms"), real(v, "decode-sequence-ms"), real(v,
        "decode-kv-token-ns"), real(v, "decode-all-to-all-ms"), number(v, "speculative-tokens",
        Integer::parseInt), real(v, "acceptance-rate"), real(v, "time-scale"));
  }

  /** Values of the latent one token stores per layer. */
  public int latentValues() {
    return LATENT_VALUES / kvScale;
  }

  /** Values of the rotary key one token stores per layer. */
  public int ropeKeyValues() {
    return ROPE_KEY_VALUES / kvScale;
  }

  /**
   * What fixes the KV and the text, which prefill and decode instances must share to exchange
   * KV (timing parameters may differ between them).
   */
  String identity() {
    return "duet-sim/seed=" + seed + "/layers=" + layers + "/kv-scale=" + kvScale
        + "/context=" + contextLength;
  }

  private static <T> T number(Map<String, String> values, String key,
      java.util.function.Function<String, T> parse) {
    try {
      return parse.apply(values.get(key).trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(key + " must be a whole number, was '" + values.get(key)
          + "'");
    }
  }

  private static double real(Map<String, String> values, String key) {
    try {
      return Double.parseDouble(values.get(key).trim());
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException(key + " must be a number, was '" + values.get(key)
          + "'");
    }
  }

  private static void require(boolean valid, String name, Object value) {
    if (!valid) {
      throw new IllegalArgumentException(name + " is out of range: " + value);
    }
  }
}
