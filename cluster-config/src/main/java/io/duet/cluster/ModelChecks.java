package io.duet.cluster;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.engine.ModelInfo;
import java.util.ArrayList;
import java.util.List;

/**
 * What a configuration must agree on with the model it serves, which only a process that reads
 * the model can check: a decode instance's expert-parallel size {@code decode.ep} divides the
 * model's routed experts (when it has any: a dense model, such as a llama2.c checkpoint, takes
 * any size). A decode service checks it when it has opened its model, {@code duet.jar check}
 * when {@code model.path} names a readable file.
 */
public final class ModelChecks {

  private ModelChecks() {
  }

  /** What {@code config} gets wrong about {@code model}; empty when nothing. */
  public static List<Problem> problems(DuetConfig config, ModelInfo model) {
    List<Problem> problems = new ArrayList<>();
    int experts = model.routedExperts();
    int ep = config.get(Settings.DECODE_EP);
    if (experts > 0 && experts % ep != 0) {
      String key = Settings.DECODE_EP.key();
      problems.add(new Problem(key, "a divisor of the " + experts + " routed experts of the model "
          + config.get(Settings.MODEL_PATH).map(Object::toString).orElse(model.architecture()),
          Validator.found(key, ep), config.origin(key)));
    }
    return problems;
  }

  /**
   * Fails when {@code config} gets anything wrong about {@code model}.
   *
   * @throws InvalidConfigException listing every problem
   */
  public static void require(DuetConfig config, ModelInfo model) {
    List<Problem> problems = problems(config, model);
    if (!problems.isEmpty()) {
      throw new InvalidConfigException(problems);
    }
  }
}
