package io.duet.deploy.impl;

import io.duet.cluster.ConfigLoader;
import io.duet.cluster.InvalidConfigException;
import io.duet.cluster.Topology;
import io.duet.service.ServiceRuntime;
import io.vertx.core.Vertx;
import java.nio.file.Path;
import java.util.Map;

/** Reading a topology file in a command, on a Vert.x of its own that is closed afterwards. */
public final class Topologies {

  private Topologies() {
  }

  /**
   * The topology in {@code file}, read with the environment {@code env} as every instance
   * started from it will read it.
   *
   * @throws InvalidConfigException with every problem of the file
   * @throws LaunchFailure when the file is missing, unreadable or names no instances
   */
  public static Topology load(Path file, Map<String, String> env) {
    Vertx vertx = Vertx.vertx();
    try {
      return ServiceRuntime.await(ConfigLoader.loadTopology(vertx, file, env));
    } catch (InvalidConfigException e) {
      throw e;
    } catch (IllegalArgumentException e) {
      throw new LaunchFailure(e.getMessage());
    } catch (Exception e) {
      throw new IllegalStateException("reading " + file + " failed", e);
    } finally {
      vertx.close();
    }
  }
}
