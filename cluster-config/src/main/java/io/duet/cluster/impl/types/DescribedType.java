package io.duet.cluster.impl.types;

import io.duet.cluster.SettingType;

/**
 * A type that describes itself with three fixed texts; text from a variable or a flag stays
 * text unless a subclass reads it.
 */
abstract class DescribedType<T> implements SettingType<T> {

  private final String name;
  private final String range;
  private final String expected;

  DescribedType(String name, String range, String expected) {
    this.name = name;
    this.range = range;
    this.expected = expected;
  }

  @Override
  public final String name() {
    return name;
  }

  @Override
  public final String range() {
    return range;
  }

  @Override
  public final String expected() {
    return expected;
  }

  @Override
  public Object fromText(String text) {
    return text;
  }

  /** The failure to decode a raw value: what was expected. */
  final IllegalArgumentException invalid() {
    return new IllegalArgumentException("expected " + expected);
  }
}
