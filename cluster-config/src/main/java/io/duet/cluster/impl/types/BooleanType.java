package io.duet.cluster.impl.types;

import java.util.Locale;

/** {@code true} or {@code false}, in any case when given as text. */
public final class BooleanType extends DescribedType<Boolean> {

  public static final BooleanType INSTANCE = new BooleanType();

  private BooleanType() {
    super("boolean", "true, false", "true or false");
  }

  @Override
  public Boolean decode(Object raw) {
    if (raw instanceof Boolean value) {
      return value;
    }
    Object parsed = raw instanceof String text ? fromText(text.trim()) : null;
    if (parsed instanceof Boolean value) {
      return value;
    }
    throw invalid();
  }

  @Override
  public Object encode(Boolean value) {
    return value;
  }

  @Override
  public Object fromText(String text) {
    return switch (text.toLowerCase(Locale.ROOT)) {
      case "true" -> Boolean.TRUE;
      case "false" -> Boolean.FALSE;
      default -> text;
    };
  }
}
