package io.duet.engine;

import java.util.Objects;

/**
 * One thing a token stores in the KV cache of each layer: Llama's keys and values, DeepSeek's
 * compressed latent and shared rotary key, ... Within a cache block a component's values are
 * kept as {@code runs} contiguous runs, each holding every slot's {@code valuesPerToken / runs}
 * values one slot after another (Llama keeps one run per KV head, so that attention streams
 * through one head's keys).
 *
 * @param name what it is, e.g. {@code k}, {@code v}, {@code latent}
 * @param dtype the element type, e.g. {@link #F32}
 * @param valuesPerToken values one token stores in one layer
 * @param runs how the values of a block are split into contiguous runs; divides valuesPerToken
 */
public record KvComponent(String name, String dtype, int valuesPerToken, int runs) {

  /** 32-bit IEEE floats, little-endian on the wire. */
  public static final String F32 = "f32";

  public KvComponent {
    Objects.requireNonNull(name, "name");
    Objects.requireNonNull(dtype, "dtype");
    if (name.isEmpty() || !name.matches("[a-z0-9_]+")) {
      throw new IllegalArgumentException("component name must be [a-z0-9_]+: '" + name + "'");
    }
    if (valuesPerToken <= 0 || runs <= 0 || valuesPerToken % runs != 0) {
      throw new IllegalArgumentException("component " + name + ": " + valuesPerToken
          + " values per token cannot be split into " + runs + " runs");
    }
  }

  /** Values of one slot in one run. */
  public int runWidth() {
    return valuesPerToken / runs;
  }

  /** Bytes one token stores for this component in one layer. */
  public int bytesPerToken() {
    return valuesPerToken * bytesPerValue();
  }

  /** Bytes of one value of the dtype. */
  public int bytesPerValue() {
    return switch (dtype) {
      case F32 -> Float.BYTES;
      default -> throw new IllegalStateException("unknown KV dtype " + dtype);
    };
  }

  /** Compact form for fingerprints and logs, e.g. {@code k:f32[6x48]}. */
  public String describe() {
    return name + ":" + dtype + "[" + runs + "x" + runWidth() + "]";
  }
}
