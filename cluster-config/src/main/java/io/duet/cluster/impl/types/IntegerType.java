package io.duet.cluster.impl.types;

/** Whole numbers in a closed range; digits given as text count. */
public final class IntegerType extends DescribedType<Integer> {

  private final int min;
  private final int max;

  public IntegerType(int min, int max) {
    super("integer", max == Integer.MAX_VALUE ? ">= " + min : min + ".." + max,
        max == Integer.MAX_VALUE ? "an integer >= " + min : "an integer in " + min + ".." + max);
    if (min > max) {
      throw new IllegalArgumentException("empty range " + min + ".." + max);
    }
    this.min = min;
    this.max = max;
  }

  @Override
  public Integer decode(Object raw) {
    Long value = RawValues.wholeNumber(raw);
    if (value == null || value < min || value > max) {
      throw invalid();
    }
    return value.intValue();
  }

  @Override
  public Object encode(Integer value) {
    return value;
  }

  @Override
  public Object fromText(String text) {
    if (!RawValues.isWholeNumber(text)) {
      return text;
    }
    long value = Long.parseLong(text);
    return value == (int) value ? (Object) (int) value : (Object) value;
  }
}
