package io.duet.engine;

/**
 * What an engine runs, for logs and benchmarks.
 *
 * @param model the model file, its architecture and shape
 * @param weights where its weights are (mapped from the file, or copied and how)
 * @param kernels the compute kernels chosen for this machine
 */
public record EngineDescription(String model, String weights, String kernels) {

  @Override
  public String toString() {
    return model + ", weights " + weights + ", kernels: " + kernels;
  }
}
