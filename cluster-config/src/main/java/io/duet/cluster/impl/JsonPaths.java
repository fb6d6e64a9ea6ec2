package io.duet.cluster.impl;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/** Dotted-path access to nested JSON objects ({@code "cluster.port"} is {@code {cluster:{port:..}}}). */
public final class JsonPaths {

  private JsonPaths() {
  }

  /**
   * Every leaf of {@code json} under its dotted path, sorted by path. Leaves are scalars, nulls,
   * arrays and empty objects; non-empty objects are descended into.
   */
  public static Map<String, Object> flatten(JsonObject json) {
    Map<String, Object> leaves = new TreeMap<>();
    flatten("", json, leaves);
    return leaves;
  }

  private static void flatten(String prefix, JsonObject json, Map<String, Object> leaves) {
    for (String key : json.fieldNames()) {
      Object value = json.getValue(key);
      String path = prefix + key;
      if (value instanceof JsonObject object && !object.isEmpty()) {
        flatten(path + ".", object, leaves);
      } else {
        leaves.put(path, value);
      }
    }
  }

  /** A value as text: objects and arrays as JSON, null as {@code null}. */
  public static String text(Object value) {
    if (value instanceof JsonObject object) {
      return object.encode();
    }
    return value instanceof JsonArray array ? array.encode() : String.valueOf(value);
  }

  /** The value at a dotted path, or null when any part of the path is missing. */
  public static Object get(JsonObject json, String path) {
    JsonObject current = json;
    String[] parts = path.split("\\.");
    for (int i = 0; i < parts.length - 1; i++) {
      Object next = current.getValue(parts[i]);
      if (!(next instanceof JsonObject object)) {
        return null;
      }
      current = object;
    }
    return current.getValue(parts[parts.length - 1]);
  }

  /** Sets the value at a dotted path, creating (or replacing non-object) parents on the way. */
  public static JsonObject put(JsonObject json, String path, Object value) {
    if (path.isEmpty() || path.startsWith(".") || path.endsWith(".") || path.contains("..")) {
      throw new IllegalArgumentException("invalid configuration key '" + path + "'");
    }
    JsonObject current = json;
    String[] parts = path.split("\\.");
    for (int i = 0; i < parts.length - 1; i++) {
      Object next = current.getValue(parts[i]);
      if (!(next instanceof JsonObject)) {
        next = new JsonObject();
        current.put(parts[i], next);
      }
      current = (JsonObject) next;
    }
    current.put(parts[parts.length - 1], value instanceof List<?> list ? new JsonArray(list) : value);
    return json;
  }
}
