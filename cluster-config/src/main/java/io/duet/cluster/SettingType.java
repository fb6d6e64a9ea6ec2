package io.duet.cluster;

import io.duet.cluster.impl.types.BooleanType;
import io.duet.cluster.impl.types.ChoiceType;
import io.duet.cluster.impl.types.CoresType;
import io.duet.cluster.impl.types.HostPortListType;
import io.duet.cluster.impl.types.IntegerListType;
import io.duet.cluster.impl.types.IntegerType;
import io.duet.cluster.impl.types.MapType;
import io.duet.cluster.impl.types.OptionalType;
import io.duet.cluster.impl.types.PathType;
import io.duet.cluster.impl.types.TextType;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The type of a {@link Setting}: which raw values are valid, the typed value each stands for,
 * and how environment variables and flags spell them.
 *
 * <p>A raw value is what the merged configuration holds: a JSON scalar, array or object as a
 * YAML file writes it, or null when unset. Types are lenient where files are: an integer
 * written as text ({@code port: "7000"}) is an integer.
 *
 * @param <T> the typed value {@link DuetConfig#get} returns
 */
public interface SettingType<T> {

  /** The type's name in the reference table: integer, boolean, string, path, choice, list, map. */
  String name();

  /** The allowed values in the reference table, e.g. {@code 0..65535}; empty when any value is. */
  String range();

  /** What a valid value is, for error messages, e.g. {@code an integer in 0..65535}. */
  String expected();

  /**
   * The typed value of a raw value.
   *
   * @throws IllegalArgumentException when the raw value is not valid
   */
  T decode(Object raw);

  /** The raw value of a typed value, as a YAML file would write it; the inverse of decode. */
  Object encode(T value);

  /**
   * The raw value an environment variable or a flag stands for (e.g. digits become a number,
   * commas separate list items). Text that is not valid stays text, for validation to report
   * with the variable or flag that gave it.
   */
  Object fromText(String text);

  /** Whole numbers from {@code min} to {@code max}. */
  static SettingType<Integer> integer(int min, int max) {
    return new IntegerType(min, max);
  }

  /** Whole numbers from {@code min} up. */
  static SettingType<Integer> atLeast(int min) {
    return integer(min, Integer.MAX_VALUE);
  }

  /**
   * A non-empty list of whole numbers from {@code min} up: a YAML list or one comma-separated
   * string.
   */
  static SettingType<List<Integer>> integers(int min) {
    return new IntegerListType(min);
  }

  /** A TCP port; 0 lets the system pick a free one. */
  static SettingType<Integer> port() {
    return integer(0, 65535);
  }

  /** A count from 1 up of threads or servers, where 0 means one per available core. */
  static SettingType<Integer> countOrAllCores() {
    return CoresType.INSTANCE;
  }

  /** {@code true} or {@code false}. */
  static SettingType<Boolean> bool() {
    return BooleanType.INSTANCE;
  }

  /** A non-empty string (surrounding blanks are dropped). */
  static SettingType<String> string() {
    return TextType.INSTANCE;
  }

  /** A file or directory path. */
  static SettingType<Path> path() {
    return PathType.INSTANCE;
  }

  /** One of {@code names}. */
  static SettingType<String> choice(String... names) {
    return ChoiceType.of(names);
  }

  /**
   * One of an enum's constants, each spelled in lower case with dashes ({@code HUGE_PAGES} is
   * {@code huge-pages}).
   */
  static <E extends Enum<E>> SettingType<E> choice(Class<E> values) {
    return ChoiceType.of(values);
  }

  /**
   * Cluster members, each {@code host} or {@code host:port}: a YAML list or one comma-separated
   * string; blank items are dropped.
   */
  static SettingType<List<String>> hostPorts() {
    return HostPortListType.INSTANCE;
  }

  /**
   * A free-form map of names to values, passed on as it is: its keys are not checked. Nested
   * maps (as {@code --set a.b.c=1} makes) are flattened back into dotted names.
   */
  static SettingType<Map<String, String>> map() {
    return MapType.INSTANCE;
  }

  /** {@code type}, or unset (null or blank): {@link Optional#empty()}. */
  static <V> SettingType<Optional<V>> optional(SettingType<V> type) {
    return new OptionalType<>(type);
  }
}
