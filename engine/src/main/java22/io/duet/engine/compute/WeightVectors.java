package io.duet.engine.compute;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Java 22+ version of the weight loads (this jar is multi-release): the incubating Vector
 * API loads off-heap data from a {@code MemorySegment} since Java 20, and the foreign memory API
 * is final since Java 22.
 */
final class WeightVectors {

  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

  private WeightVectors() {
  }

  /** What the loads read from; made once per matrix and kept by {@link WeightMatrix}. */
  static Object view(ByteBuffer littleEndianBytes) {
    return MemorySegment.ofBuffer(littleEndianBytes);
  }

  /** Which loads are in use; for the kernels' description. */
  static String description() {
    return "MemorySegment loads";
  }

  /** The second argument of {@link #load}; segments carry their own address. */
  static long base(Object view) {
    return 0;
  }

  static FloatVector load(VectorSpecies<Float> species, Object view, long base, int byteOffset) {
    return FloatVector.fromMemorySegment(species, (MemorySegment) view, byteOffset, LE);
  }

}
