package io.duet.cluster.impl;

import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.Date;
import java.util.Map;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * Reads a YAML classpath resource into JSON exactly as vertx-config-yaml's processor does (maps
 * become objects, dates instants), for the one layer that must not go through the Vert.x file
 * resolver: a relative path there is looked up in the working directory before the classpath.
 */
public final class Yaml {

  private Yaml() {
  }

  public static JsonObject readResource(String name) {
    try (InputStream in = Yaml.class.getClassLoader().getResourceAsStream(name)) {
      if (in == null) {
        throw new IllegalStateException("resource " + name + " is missing from the classpath");
      }
      return parse(new String(in.readAllBytes(), StandardCharsets.UTF_8), name);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read resource " + name, e);
    }
  }

  static JsonObject parse(String text, String what) {
    Object doc = new org.yaml.snakeyaml.Yaml(new SafeConstructor(new LoaderOptions())).load(text);
    if (doc == null) {
      return new JsonObject();
    }
    if (!(doc instanceof Map<?, ?> map)) {
      throw new IllegalArgumentException(what + ": the top level must be a map of keys");
    }
    return jsonify(map);
  }

  private static JsonObject jsonify(Map<?, ?> yaml) {
    JsonObject json = new JsonObject();
    for (Map.Entry<?, ?> entry : yaml.entrySet()) {
      Object value = entry.getValue();
      if (value instanceof Map<?, ?> map) {
        value = jsonify(map);
      }
      if (value instanceof Date date) {
        value = date.toInstant();
      }
      json.put(String.valueOf(entry.getKey()), value);
    }
    return json;
  }
}
