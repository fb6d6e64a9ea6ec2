package io.duet.cluster.impl;

import io.vertx.config.spi.ConfigProcessor;
import io.vertx.config.yaml.YamlProcessor;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.json.JsonObject;

/**
 * vertx-config's YAML format, except that a file holding only comments is an empty object:
 * the stock processor returns null for it, and the retriever then fails with a
 * NullPointerException while merging.
 */
public final class TopologyYamlProcessor implements ConfigProcessor {

  /** The format name to give a {@code ConfigStoreOptions}. */
  public static final String FORMAT = "duet-yaml";

  private final YamlProcessor yaml = new YamlProcessor();

  @Override
  public String name() {
    return FORMAT;
  }

  @Override
  public Future<JsonObject> process(Vertx vertx, JsonObject configuration, Buffer input) {
    return yaml.process(vertx, configuration, input)
        .map(json -> json == null ? new JsonObject() : json);
  }
}
