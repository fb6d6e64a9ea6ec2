package io.duet.cluster.impl.types;

import java.nio.file.Path;

/** A file or directory path. */
public final class PathType extends DescribedType<Path> {

  public static final PathType INSTANCE = new PathType();

  private PathType() {
    super("path", "", "a path");
  }

  @Override
  public Path decode(Object raw) {
    try {
      return Path.of(TextType.INSTANCE.decode(raw));
    } catch (IllegalArgumentException e) {
      throw invalid();
    }
  }

  @Override
  public Object encode(Path value) {
    return value.toString();
  }
}
