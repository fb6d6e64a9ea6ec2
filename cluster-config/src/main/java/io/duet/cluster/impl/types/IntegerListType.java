package io.duet.cluster.impl.types;

import io.vertx.core.json.JsonArray;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A non-empty list of whole numbers from a minimum up: a YAML list, or one comma-separated
 * string ({@code 8,16}); items written as digits count.
 */
public final class IntegerListType extends DescribedType<List<Integer>> {

  private final IntegerType item;

  public IntegerListType(int min) {
    super("list", "integers >= " + min + ", at least one",
        "a non-empty list of integers >= " + min);
    this.item = new IntegerType(min, Integer.MAX_VALUE);
  }

  @Override
  public List<Integer> decode(Object raw) {
    List<?> items = RawValues.items(raw);
    if (items == null || items.isEmpty()) {
      throw invalid();
    }
    List<Integer> values = new ArrayList<>();
    for (Object value : items) {
      try {
        values.add(item.decode(value));
      } catch (IllegalArgumentException e) {
        throw invalid();
      }
    }
    return List.copyOf(values);
  }

  @Override
  public Object encode(List<Integer> value) {
    return new JsonArray(new ArrayList<>(value));
  }

  /** The items, each read as {@link IntegerType} reads text: a bad one stays for validation. */
  @Override
  public Object fromText(String text) {
    return new JsonArray(Arrays.stream(text.split(",")).map(String::trim)
        .map(item::fromText).toList());
  }
}
