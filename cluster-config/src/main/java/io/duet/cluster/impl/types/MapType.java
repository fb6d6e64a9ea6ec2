package io.duet.cluster.impl.types;

import io.duet.cluster.impl.JsonPaths;
import io.vertx.core.json.JsonObject;
import java.util.Map;
import java.util.TreeMap;

/**
 * A free-form map of names to values: the keys are not checked, and the values are passed on
 * as text. Nested maps are flattened into dotted names, so that {@code --set m.a.b=1} and
 * {@code m: {a.b: 1}} both give {@code a.b=1}. Unset is an empty map.
 */
public final class MapType extends DescribedType<Map<String, String>> {

  public static final MapType INSTANCE = new MapType();

  private MapType() {
    super("map", "any keys (not checked)", "a map of names to values");
  }

  @Override
  public Map<String, String> decode(Object raw) {
    if (raw == null) {
      return Map.of();
    }
    if (!(raw instanceof JsonObject object)) {
      throw invalid();
    }
    Map<String, String> entries = new TreeMap<>();
    JsonPaths.flatten(object).forEach((name, value) -> {
      if (value != null) {
        entries.put(name, value.toString());
      }
    });
    return entries;
  }

  @Override
  public Object encode(Map<String, String> value) {
    return new JsonObject(new TreeMap<>(value));
  }
}
