package io.duet.deploy.impl;

import io.duet.contract.Role;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * The packaged jar of each service: {@code <role>-service.jar}, found in a directory given, or
 * near {@code duet.jar}: beside it (a directory of jars) or in the build tree it sits in
 * ({@code <module>/target/<module>.jar} of the repository, {@code duet.jar} being
 * {@code deploy/target/duet.jar}).
 */
public final class ServiceJars {

  /** Directories above duet.jar's location that are searched: target/, deploy/, the root. */
  private static final int LEVELS_UP = 3;

  private ServiceJars() {
  }

  /**
   * The jar of every role.
   *
   * @param directory where the jars are (as a directory of jars or a repository), or null to
   *     look near {@code duet.jar}
   * @throws LaunchFailure naming the places searched when a jar is missing
   */
  public static Map<Role, Path> find(Path directory) {
    List<Path> places = directory != null ? List.of(directory.toAbsolutePath().normalize())
        : nearLauncher();
    Map<Role, Path> jars = new EnumMap<>(Role.class);
    for (Role role : Role.values()) {
      String module = role.wireName() + "-service";
      jars.put(role, places.stream().flatMap(place -> List.of(place.resolve(module + ".jar"),
              place.resolve(module).resolve("target").resolve(module + ".jar")).stream())
          .filter(Files::isRegularFile).findFirst()
          .orElseThrow(() -> new LaunchFailure("no " + module + ".jar in " + places + " (nor in "
              + module + "/target/ there): build the jars with mvn -B package -DskipTests, or "
              + "name their directory with --jars DIR")));
    }
    return jars;
  }

  private static List<Path> nearLauncher() {
    Path location;
    try {
      location = Path.of(ServiceJars.class.getProtectionDomain().getCodeSource().getLocation()
          .toURI()).toAbsolutePath().normalize();
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
    List<Path> places = new ArrayList<>();
    for (Path dir = location.getParent(); dir != null && places.size() <= LEVELS_UP;
        dir = dir.getParent()) {
      places.add(dir);
    }
    return places;
  }
}
