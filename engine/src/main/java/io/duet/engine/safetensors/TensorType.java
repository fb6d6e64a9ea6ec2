package io.duet.engine.safetensors;

import io.duet.engine.compute.WeightFormat;

/**
 * The element types of safetensors tensors that the engine reads, and how one element becomes a
 * float. Everything is little-endian.
 */
public enum TensorType {
  F32(4),
  BF16(2),
  F16(2),
  /** 8-bit float, 4 exponent bits (bias 7), 3 mantissa bits, no infinities ({@code e4m3fn}). */
  F8_E4M3(1);

  private final int bytes;

  TensorType(int bytes) {
    this.bytes = bytes;
  }

  /** Bytes of one element. */
  public int bytes() {
    return bytes;
  }

  /** The type a safetensors header names {@code name}, or null when the engine has none. */
  static TensorType named(String name) {
    for (TensorType type : values()) {
      if (type.name().equals(name)) {
        return type;
      }
    }
    return null;
  }

  /** The value of an IEEE half-precision float. */
  public static float f16ToFloat(int bits) {
    int sign = (bits & 0x8000) << 16;
    int exponent = (bits >>> 10) & 0x1f;
    int mantissa = bits & 0x3ff;
    if (exponent == 0x1f) {
      return Float.intBitsToFloat(sign | 0x7f800000 | (mantissa << 13));
    }
    if (exponent == 0) {
      float magnitude = mantissa * 0x1p-24f;
      return sign == 0 ? magnitude : -magnitude;
    }
    return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
  }

  /** The value of a bfloat16: the upper half of a float. */
  public static float bf16ToFloat(int bits) {
    return WeightFormat.bf16ToFloat(bits);
  }

  /** The value of an e4m3fn byte. */
  public static float e4m3ToFloat(int bits) {
    return WeightFormat.e4m3ToFloat(bits);
  }
}
