package io.duet.cluster.impl.types;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Pattern;

/** Reading raw configuration values the way every type does. */
public final class RawValues {

  private static final Pattern WHOLE_NUMBER = Pattern.compile("[+-]?\\d{1,18}");

  private RawValues() {
  }

  /**
   * A scalar as trimmed text: numbers and booleans count, since YAML types them by their
   * spelling. Null for null, objects and arrays.
   */
  public static String text(Object raw) {
    if (raw == null || raw instanceof JsonObject || raw instanceof JsonArray) {
      return null;
    }
    return raw.toString().trim();
  }

  /**
   * The items of a list as files and the command line write it: a YAML list, or one
   * comma-separated string; null for anything else.
   */
  static List<?> items(Object raw) {
    if (raw instanceof JsonArray array) {
      return array.getList();
    }
    return raw instanceof String text ? Arrays.asList(text.split(",")) : null;
  }

  /** Whether {@code raw} is null or blank text. */
  public static boolean isUnset(Object raw) {
    return raw == null || raw instanceof String text && text.isBlank();
  }

  /** A whole number, given as a number or as its digits; null when it is neither. */
  static Long wholeNumber(Object raw) {
    if (raw instanceof Integer || raw instanceof Long || raw instanceof Short
        || raw instanceof Byte) {
      return ((Number) raw).longValue();
    }
    if (raw instanceof Number number) {
      double value = number.doubleValue();
      return value == Math.rint(value) && Math.abs(value) < Long.MAX_VALUE ? (long) value : null;
    }
    if (raw instanceof String text && isWholeNumber(text.trim())) {
      return Long.parseLong(text.trim());
    }
    return null;
  }

  static boolean isWholeNumber(String text) {
    return WHOLE_NUMBER.matcher(text).matches();
  }
}
