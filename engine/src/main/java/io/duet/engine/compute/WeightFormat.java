package io.duet.engine.compute;

/**
 * How a {@link WeightMatrix} holds its weights. The kernels read every format directly and widen
 * each weight to float32 in registers, so a matrix costs its format's bytes and no float32 copy.
 */
public enum WeightFormat {

  /** IEEE float32, little-endian: llama2.c checkpoints and F32 safetensors. */
  F32(4),

  /** bfloat16: the upper half of a float32 ({@code bits << 16}), exact to widen. */
  BF16(2),

  /**
   * DeepSeek-V3's 8-bit e4m3fn (4 exponent bits of bias 7, 3 mantissa bits, no infinities), each
   * multiplied by the float32 scale of its block of rows and columns.
   */
  FP8_E4M3(1);

  /**
   * {@code 2^120}: an e4m3 byte's magnitude bits shifted into a float32's exponent and mantissa
   * fields ({@link #e4m3Bits}) read {@code 2^(127 - 7)} too small, bias for bias. Subnormal e4m3
   * values land on float32 subnormals of the same mantissa, so multiplying by this constant
   * (folded into each block's scale) decodes every finite e4m3 value exactly, with no branch.
   */
  static final float E4M3_BIAS_CORRECTION = 0x1p120f;

  /** {@code e4m3Bits} keeps the sign (bit 31) and the 7 magnitude bits shifted to 20..26. */
  static final int E4M3_FIELDS = 0x87F00000;

  private final int bytes;

  WeightFormat(int bytes) {
    this.bytes = bytes;
  }

  /** Bytes of one weight (an FP8 matrix's block scales come on top). */
  public int bytes() {
    return bytes;
  }

  /**
   * The float32 bits of a sign-extended e4m3 byte, {@code 2^-120} times its value (see
   * {@link #E4M3_BIAS_CORRECTION}). The two NaN codes ({@code 0x7f}, {@code 0xff}) read as
   * {@code ±480 * 2^-120}: checkpoints hold no NaN weights, and a branch for them would cost every
   * weight.
   */
  static int e4m3Bits(int signExtendedByte) {
    return (signExtendedByte << 20) & E4M3_FIELDS;
  }

  /** The value of an e4m3fn byte, NaN for its two NaN codes. */
  public static float e4m3ToFloat(int bits) {
    if ((bits & 0x7f) == 0x7f) {
      return Float.NaN;
    }
    return Float.intBitsToFloat(e4m3Bits((byte) bits)) * E4M3_BIAS_CORRECTION;
  }

  /** The value of a bfloat16. */
  public static float bf16ToFloat(int bits) {
    return Float.intBitsToFloat((bits & 0xffff) << 16);
  }
}
