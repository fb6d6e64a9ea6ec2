package io.duet.engine.impl;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector loads from a weight matrix's off-heap bytes: the one place that names the JDK-specific
 * load. Java 17 to 19 load from the {@code ByteBuffer}; the engine jar is multi-release and
 * carries a Java 22+ version of this class that loads from a {@code MemorySegment}, because the
 * incubating API dropped the {@code ByteBuffer} loads in Java 20.
 */
final class WeightVectors {

  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

  private WeightVectors() {
  }

  /** What the loads read from; made once per matrix and kept by {@link WeightMatrix}. */
  static Object view(ByteBuffer littleEndianBytes) {
    return littleEndianBytes;
  }

  static FloatVector load(VectorSpecies<Float> species, Object view, int byteOffset) {
    return FloatVector.fromByteBuffer(species, (ByteBuffer) view, byteOffset, LE);
  }

  static FloatVector load(VectorSpecies<Float> species, Object view, int byteOffset,
      VectorMask<Float> mask) {
    return FloatVector.fromByteBuffer(species, (ByteBuffer) view, byteOffset, LE, mask);
  }
}
