package io.duet.deploy.impl;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.cluster.ModelChecks;
import io.duet.cluster.Settings;
import io.duet.cluster.Topology;
import io.duet.contract.Role;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.ModelInfo;
import io.duet.service.ServiceRuntime;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The checks of a topology that need its model ({@link ModelChecks}): each decode instance's
 * model is opened when {@code model.path} names a file here (once per file), else the check is
 * left to the decode service, which makes it when it has opened its model. The simulated
 * engine's model ({@code engine: sim}) is made up from its parameters and always checked.
 */
public final class ModelCheck {

  /**
   * What the check found.
   *
   * @param problems what the instances get wrong about their models, under the file's keys
   * @param notes one line per model: what was read, or why nothing was
   */
  public record Result(List<Problem> problems, List<String> notes) {
  }

  private ModelCheck() {
  }

  public static Result run(Topology topology) {
    List<Problem> problems = new ArrayList<>();
    Map<String, String> notes = new LinkedHashMap<>();
    Map<Path, Optional<ModelInfo>> models = new LinkedHashMap<>();
    for (Topology.Instance instance : topology.instances()) {
      if (instance.role() != Role.DECODE) {
        continue;
      }
      if (ServiceRuntime.simulated(instance.config())) {
        // made up from its parameters at once: always checked
        open(instance, null, notes, problems).ifPresent(info ->
            problems.addAll(instance.modelProblems(info)));
        continue;
      }
      Optional<Path> path = instance.config().get(Settings.MODEL_PATH);
      if (path.isEmpty() || !Files.exists(path.get())) {
        notes.put(path.map(Path::toString).orElse(""), "model " + path.map(p -> p + " not found")
            .orElse("unset (model.path, MODEL_PATH)") + ": decode.ep is checked against the "
            + "model's experts when a decode instance starts");
        continue;
      }
      Optional<ModelInfo> model = models.computeIfAbsent(path.get(), file ->
          open(instance, file, notes, problems));
      model.ifPresent(info -> problems.addAll(instance.modelProblems(info)));
    }
    return new Result(problems, List.copyOf(notes.values()));
  }

  private static Optional<ModelInfo> open(Topology.Instance instance, Path file,
      Map<String, String> notes, List<Problem> problems) {
    // One KV block and one thread: only the model's description is read.
    EngineOptions options = ServiceRuntime.modelOptions(instance.config(), instance.role(), file,
        null).kvBlocks(1).threads(1);
    String name = file == null ? "the simulated engine of " + instance.name() : file.toString();
    try (Engine engine = Engine.open(options)) {
      ModelInfo info = engine.info();
      notes.put(name, "model " + name + ": " + info.architecture() + ", "
          + (info.routedExperts() == 0 ? "dense (any decode.ep fits)"
          : info.routedExperts() + " routed experts (decode.ep checked)"));
      return Optional.of(info);
    } catch (IOException | RuntimeException e) {
      String key = file == null ? Settings.SIM_PROFILE.key() : Settings.MODEL_PATH.key();
      problems.add(new Problem(key, "a model an engine architecture opens (" + e.getMessage()
          + ")", "'" + name + "'", instance.config().source(key)));
      return Optional.empty();
    }
  }
}
