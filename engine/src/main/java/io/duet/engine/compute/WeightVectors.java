package io.duet.engine.compute;

import io.duet.engine.launch.VectorLauncher;
import java.lang.invoke.LambdaMetafactory;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Field;
import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector loads from a weight matrix's off-heap bytes: the one place that names the JDK-specific
 * load. The engine jar is multi-release and carries a Java 22+ version of this class that loads
 * from a {@code MemorySegment}, because the incubating API dropped the {@code ByteBuffer} loads
 * in Java 20.
 *
 * <p>On Java 17 a {@code ByteBuffer} load re-reads the buffer's address and limit and checks them
 * on every 32 bytes (the JDK fences each access, so the compiler cannot hoist the checks). That
 * is about ten extra instructions per load, enough to halve how far ahead a core can have memory
 * reads in flight, and single-stream decode is bound by exactly that. When the JVM exports
 * {@code jdk.internal.vm.vector} to us ({@link VectorLauncher#UNCHECKED_LOADS_FLAG}, which the
 * launcher adds), loads therefore go straight to the intrinsic behind {@code fromByteBuffer}, by
 * address, with no per-load check: the kernels check each matmul's row range once instead. The
 * handle is looked up by name and type and tried on a known buffer first, so any JDK where it
 * differs keeps the checked loads.
 */
final class WeightVectors {

  private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
  private static final VectorSpecies<Float> S256 = FloatVector.SPECIES_256;
  private static final Class<?> S256_VECTOR = FloatVector.zero(S256).getClass();
  /** {@code VectorSupport.load} typed with {@code Object} for the internal types; null if absent. */
  private static final MethodHandle UNCHECKED_LOAD;
  /** Whether direct buffers' loads go unchecked: the handle exists and passed its check. */
  private static final boolean UNCHECKED;
  /** What the intrinsic runs where it is not compiled: the checked load. */
  private static final Object CHECKED_FALLBACK;
  private static final long BUFFER_ADDRESS_OFFSET;
  private static final sun.misc.Unsafe UNSAFE;
  private static final String LOADS;

  static {
    MethodHandle load = null;
    Object fallback = null;
    sun.misc.Unsafe unsafe = null;
    long addressOffset = -1;
    String why;
    try {
      Field theUnsafe = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
      theUnsafe.setAccessible(true);
      unsafe = (sun.misc.Unsafe) theUnsafe.get(null);
      addressOffset = unsafe.objectFieldOffset(Buffer.class.getDeclaredField("address"));
      MethodHandles.Lookup lookup = MethodHandles.lookup();
      Class<?> support = Class.forName("jdk.internal.vm.vector.VectorSupport");
      Class<?> species = Class.forName("jdk.internal.vm.vector.VectorSupport$VectorSpecies");
      Class<?> operation = Class.forName("jdk.internal.vm.vector.VectorSupport$LoadOperation");
      load = lookup.findStatic(support, "load", MethodType.methodType(Object.class, Class.class,
              Class.class, int.class, Object.class, long.class, Object.class, int.class, species,
              operation))
          .asType(MethodType.methodType(Object.class, Class.class, Class.class, int.class,
              Object.class, long.class, Object.class, int.class, Object.class, Object.class));
      MethodType erased = MethodType.methodType(Object.class, Object.class, int.class, species);
      fallback = LambdaMetafactory.metafactory(lookup, "load", MethodType.methodType(operation),
              erased,
              lookup.findStatic(WeightVectors.class, "checkedLoad",
                  MethodType.methodType(Object.class, Object.class, int.class, Object.class)),
              erased)
          .getTarget().invoke();
      why = null;
    } catch (IllegalAccessException e) {
      why = "start the JVM with " + VectorLauncher.UNCHECKED_LOADS_FLAG + " for unchecked loads";
    } catch (Throwable e) {
      why = "unchecked loads unavailable on this JDK: " + e;
    }
    UNSAFE = unsafe;
    BUFFER_ADDRESS_OFFSET = addressOffset;
    UNCHECKED_LOAD = why == null ? load : null;
    CHECKED_FALLBACK = fallback;
    if (why == null) {
      why = selfCheck();
    }
    UNCHECKED = why == null;
    LOADS = why == null ? "unchecked off-heap loads" : "bounds-checked ByteBuffer loads (" + why
        + ")";
  }

  private WeightVectors() {
  }

  /** A matrix's bytes as the loads read them: the buffer, and its address for unchecked loads. */
  static final class View {
    final ByteBuffer bytes;
    final long address;

    private View(ByteBuffer bytes, long address) {
      this.bytes = bytes;
      this.address = address;
    }
  }

  /** What the loads read from; made once per matrix and kept by {@link WeightMatrix}. */
  static Object view(ByteBuffer littleEndianBytes) {
    long address = UNCHECKED && littleEndianBytes.isDirect()
        ? UNSAFE.getLong(littleEndianBytes, BUFFER_ADDRESS_OFFSET) : 0;
    return new View(littleEndianBytes, address);
  }

  /**
   * The second argument of {@link #load}: the matrix's address when its loads go unchecked, 0
   * otherwise. Kernels read it once per call: a field read inside the loop costs instructions.
   */
  static long base(Object view) {
    return ((View) view).address;
  }

  /** Which loads are in use, and how to get the faster ones; for the kernels' description. */
  static String description() {
    return LOADS;
  }

  /**
   * Loads a vector of {@code species} (the kernels' 256-bit one: unchecked loads exist for it
   * alone) at {@code byteOffset}. Unchecked when {@code base} is not 0: the caller then
   * guarantees {@code byteOffset + 32} is within the matrix.
   */
  static FloatVector load(VectorSpecies<Float> species, Object view, long base, int byteOffset) {
    if (base != 0) {
      return unchecked(view, base + byteOffset, byteOffset);
    }
    return FloatVector.fromByteBuffer(species, ((View) view).bytes, byteOffset, LE);
  }


  private static FloatVector unchecked(Object view, long address, int byteOffset) {
    try {
      // The view rides along for the checked fallback; it also keeps the mapping reachable.
      return (FloatVector) (Object) UNCHECKED_LOAD.invokeExact((Class<?>) S256_VECTOR,
          (Class<?>) float.class, S256.length(), (Object) null, address, view, byteOffset,
          (Object) S256, CHECKED_FALLBACK);
    } catch (Throwable e) {
      throw new IllegalStateException("unchecked weight load failed", e);
    }
  }

  private static Object checkedLoad(Object view, int byteOffset, Object species) {
    return FloatVector.fromByteBuffer(S256, ((View) view).bytes, byteOffset, LE);
  }

  /** Null if unchecked loads read what checked ones read, else why not. */
  private static String selfCheck() {
    ByteBuffer bytes = ByteBuffer.allocateDirect(4 * 32).order(LE);
    for (int i = 0; i < 32; i++) {
      bytes.putFloat(i * Float.BYTES, i * 1.5f - 7f);
    }
    View view = new View(bytes, UNSAFE.getLong(bytes, BUFFER_ADDRESS_OFFSET));
    try {
      for (int offset = 0; offset + 32 <= bytes.capacity(); offset += 4) {
        FloatVector loaded = unchecked(view, view.address + offset, offset);
        if (!loaded.equals(FloatVector.fromByteBuffer(S256, bytes, offset, LE))) {
          return "unchecked loads disagree with checked ones at byte " + offset;
        }
      }
      return null;
    } catch (RuntimeException e) {
      return "unchecked loads fail: " + e;
    }
  }
}
