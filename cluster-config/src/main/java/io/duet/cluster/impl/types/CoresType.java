package io.duet.cluster.impl.types;

/** A count from 1 up, where 0 means one per core the JVM may use. */
public final class CoresType extends DescribedType<Integer> {

  public static final CoresType INSTANCE = new CoresType(new IntegerType(0, Integer.MAX_VALUE));

  private final IntegerType count;

  private CoresType(IntegerType count) {
    super(count.name(), count.range() + " (0 = one per core)",
        count.expected() + " (0 = one per core)");
    this.count = count;
  }

  @Override
  public Integer decode(Object raw) {
    int value = count.decode(raw);
    return value == 0 ? Runtime.getRuntime().availableProcessors() : value;
  }

  @Override
  public Object encode(Integer value) {
    return count.encode(value);
  }

  @Override
  public Object fromText(String text) {
    return count.fromText(text);
  }
}
