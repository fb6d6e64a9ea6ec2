package io.duet.contract;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;

/**
 * Helpers shared by the message records: every message is a JSON object with a version field
 * {@code v}, so that a newer peer can tell an older message apart (and refuse what it cannot
 * read) instead of misreading it.
 */
public final class Messages {

  /** The contract version these records speak. */
  public static final int VERSION = 1;

  private Messages() {
  }

  static JsonObject envelope() {
    return new JsonObject().put("v", VERSION);
  }

  static JsonObject checked(JsonObject json, String what) {
    if (json == null) {
      throw new IllegalArgumentException(what + ": empty message");
    }
    // getValue, not getInteger: a non-numeric "v" must be refused, not throw ClassCastException
    Object version = json.getValue("v");
    if (!(version instanceof Number number) || number.doubleValue() != VERSION) {
      throw new IllegalArgumentException(what + ": contract version " + version
          + " is not the supported version " + VERSION);
    }
    return json;
  }

  static JsonArray ints(int[] values) {
    JsonArray array = new JsonArray();
    for (int value : values) {
      array.add(value);
    }
    return array;
  }

  static int[] ints(JsonArray array) {
    if (array == null) {
      return new int[0];
    }
    int[] values = new int[array.size()];
    for (int i = 0; i < values.length; i++) {
      values[i] = array.getInteger(i);
    }
    return values;
  }
}
