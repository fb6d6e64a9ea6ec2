package io.duet.engine.impl;

import io.duet.engine.EngineOptions;
import io.duet.engine.ModelFormatException;
import io.duet.engine.spi.Architecture;
import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/** The architectures on the class path ({@link ServiceLoader}), and the choice of one. */
public final class Architectures {

  private Architectures() {
  }

  /** Every registered architecture, in class-path order. */
  public static List<Architecture> all() {
    List<Architecture> found = new ArrayList<>();
    ServiceLoader.load(Architecture.class, Architectures.class.getClassLoader())
        .forEach(found::add);
    return found;
  }

  /** The names of the registered architectures. */
  public static List<String> names() {
    return all().stream().map(Architecture::name).toList();
  }

  /**
   * The architecture {@link EngineOptions#architecture} names, else the one that recognizes
   * {@link EngineOptions#modelPath}.
   *
   * @throws ModelFormatException when the name is unknown or no architecture recognizes the
   *     model (the message lists the known ones)
   */
  public static Architecture find(EngineOptions options) throws ModelFormatException {
    List<Architecture> all = all();
    String name = options.architecture();
    if (name != null) {
      for (Architecture a : all) {
        if (a.name().equals(name)) {
          return a;
        }
      }
      throw new ModelFormatException("unknown model architecture '" + name + "'; known: "
          + names());
    }
    for (Architecture a : all) {
      if (a.recognizes(options.modelPath())) {
        return a;
      }
    }
    throw new ModelFormatException(options.modelPath() + " is not a model any known "
        + "architecture recognizes (" + names() + "); name one with model.architecture");
  }
}
