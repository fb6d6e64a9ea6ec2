package io.duet.cluster;

import io.duet.cluster.InvalidConfigException.Problem;
import io.duet.engine.ModelInfo;
import java.util.ArrayList;
import java.util.List;

/**
 * What a configuration must agree on with the model it serves, which only a process that reads
 * the model can check: a decode instance's expert-parallel size {@code decode.ep} divides the
 * model's routed experts, or the expert slots {@code decode.expert-slots} when set, which hold
 * at least the routed experts (when it has any: a dense model, such as a llama2.c checkpoint,
 * takes any size). A decode service checks it when it has opened its model, {@code duet.jar check}
 * when {@code model.path} names a readable file.
 */
public final class ModelChecks {

  private ModelChecks() {
  }

  /** What {@code config} gets wrong about {@code model}; empty when nothing. */
  public static List<Problem> problems(DuetConfig config, ModelInfo model) {
    List<Problem> problems = new ArrayList<>();
    int experts = model.routedExperts();
    if (experts == 0) {
      return problems;
    }
    String name = config.get(Settings.MODEL_PATH).map(Object::toString)
        .orElse(model.architecture());
    int ep = config.get(Settings.DECODE_EP);
    int slots = config.get(Settings.DECODE_EXPERT_SLOTS);
    if (slots > 0 && slots < experts) {
      String key = Settings.DECODE_EXPERT_SLOTS.key();
      problems.add(new Problem(key, "0 or at least the " + experts + " routed experts of the "
          + "model " + name, Validator.found(key, slots), config.origin(key)));
    } else if ((slots > 0 ? slots : experts) % ep != 0) {
      String key = Settings.DECODE_EP.key();
      problems.add(new Problem(key, "a divisor of the " + (slots > 0 ? slots + " expert slots"
          : experts + " routed experts of the model " + name), Validator.found(key, ep),
          config.origin(key)));
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
