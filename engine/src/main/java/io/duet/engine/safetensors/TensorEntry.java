package io.duet.engine.safetensors;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * One tensor as a safetensors header describes it.
 *
 * @param name the tensor's name, e.g. {@code model.layers.0.self_attn.q_a_proj.weight}
 * @param file the {@code .safetensors} file holding it
 * @param dtype the header's element type, e.g. {@code BF16}
 * @param shape its dimensions, outermost first
 * @param position where its bytes start in the file
 * @param length how many bytes it has
 */
public record TensorEntry(String name, Path file, String dtype, long[] shape, long position,
    long length) {

  /** Elements: the product of the shape (1 for a scalar). */
  public long elements() {
    long n = 1;
    for (long d : shape) {
      n *= d;
    }
    return n;
  }

  /** The shape as text, e.g. {@code [64, 32]}. */
  public String shapeText() {
    return Arrays.toString(shape);
  }

  /** Where it is, for error messages: {@code tensor NAME in FILE}. */
  public String where() {
    return "tensor " + name + " in " + file;
  }
}
