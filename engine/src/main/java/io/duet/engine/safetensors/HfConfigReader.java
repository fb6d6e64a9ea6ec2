package io.duet.engine.safetensors;

import com.fasterxml.jackson.databind.JsonNode;
import io.duet.engine.ModelFormatException;
import java.util.ArrayList;
import java.util.List;

/**
 * Typed reads of a Hugging Face {@code config.json}'s fields, each failing with a
 * {@link ModelFormatException} that names the file and the field.
 */
public final class HfConfigReader {
  private final JsonNode json;
  private final String source;

  /** @param source names the file (or the part of it) in error messages */
  public HfConfigReader(JsonNode json, String source) {
    this.json = json;
    this.source = source;
  }

  public String source() {
    return source;
  }

  public int positive(String field) throws ModelFormatException {
    int value = integer(field);
    if (value <= 0) {
      throw new ModelFormatException(source + ": " + field + " must be positive, is " + value);
    }
    return value;
  }

  /** A positive int, or 0 when the field is null or absent. */
  public int optionalPositive(String field) throws ModelFormatException {
    JsonNode node = json.get(field);
    return node == null || node.isNull() ? 0 : positive(field);
  }

  public int natural(String field, int absent) throws ModelFormatException {
    JsonNode node = json.get(field);
    if (node == null || node.isNull()) {
      return absent;
    }
    int value = integer(field);
    if (value < 0) {
      throw new ModelFormatException(source + ": " + field + " must not be negative");
    }
    return value;
  }

  public double number(String field, double absent) throws ModelFormatException {
    JsonNode node = json.get(field);
    if (node == null || node.isNull()) {
      return absent;
    }
    if (!node.isNumber()) {
      throw new ModelFormatException(source + ": " + field + " must be a number, is " + node);
    }
    return node.asDouble();
  }

  /** One token id or a list of them (1 when absent). */
  public List<Integer> tokens(String field) throws ModelFormatException {
    JsonNode node = json.get(field);
    List<Integer> ids = new ArrayList<>();
    if (node != null && node.isArray()) {
      for (JsonNode id : node) {
        ids.add(id.asInt());
      }
    } else {
      ids.add(natural(field, 1));
    }
    return ids;
  }

  private int integer(String field) throws ModelFormatException {
    JsonNode node = json.get(field);
    if (node == null || node.isNull()) {
      throw new ModelFormatException(source + ": missing " + field);
    }
    if (!node.canConvertToInt() || !node.isIntegralNumber()) {
      throw new ModelFormatException(source + ": " + field + " must be an integer, is " + node);
    }
    return node.asInt();
  }

  /** An error saying the configuration asks for {@code what}, which is not supported. */
  public ModelFormatException unsupported(String what) {
    return new ModelFormatException(source + ": unsupported config: " + what);
  }
}
