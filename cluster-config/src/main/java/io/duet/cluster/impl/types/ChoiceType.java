package io.duet.cluster.impl.types;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

/** One of a fixed set of names, each standing for a value. */
public final class ChoiceType<T> extends DescribedType<T> {

  private final Map<String, T> values;

  private ChoiceType(Map<String, T> values) {
    super("choice", String.join(", ", values.keySet()),
        "one of " + String.join(", ", values.keySet()));
    if (values.isEmpty()) {
      throw new IllegalArgumentException("a choice needs at least one name");
    }
    this.values = values;
  }

  /** The names stand for themselves. */
  public static ChoiceType<String> of(String... names) {
    return new ChoiceType<>(index(Arrays.asList(names), Function.identity()));
  }

  /** Each constant is named in lower case with dashes: {@code HUGE_PAGES} is {@code huge-pages}. */
  public static <E extends Enum<E>> ChoiceType<E> of(Class<E> type) {
    return new ChoiceType<>(index(Arrays.asList(type.getEnumConstants()),
        constant -> constant.name().toLowerCase(Locale.ROOT).replace('_', '-')));
  }

  private static <T> Map<String, T> index(Iterable<T> values, Function<T, String> name) {
    Map<String, T> index = new LinkedHashMap<>();
    values.forEach(value -> index.put(name.apply(value), value));
    return index;
  }

  @Override
  public T decode(Object raw) {
    T value = values.get(RawValues.text(raw));
    if (value == null) {
      throw invalid();
    }
    return value;
  }

  @Override
  public Object encode(T value) {
    return values.entrySet().stream().filter(entry -> entry.getValue().equals(value))
        .map(Map.Entry::getKey).findFirst()
        .orElseThrow(this::invalid);
  }
}
