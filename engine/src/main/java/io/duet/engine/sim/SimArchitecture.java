package io.duet.engine.sim;

import io.duet.engine.EngineOptions;
import io.duet.engine.spi.Architecture;
import io.duet.engine.spi.LoadedModel;
import java.io.IOException;
import java.nio.file.Path;

/**
 * The simulated engine, {@code sim}: a made-up DeepSeek-V3-like model that spends time from a
 * timing model ({@link SimTiming}) instead of computing, so that a topology of many more
 * accelerators than this machine has runs its whole control plane here: discovery, scheduling,
 * real KV bytes over the real KV channel, streaming. Its text is pseudo-text
 * ({@link PseudoText}), never a model's.
 *
 * <p>Never chosen unless named ({@code engine: sim}, or {@code model.architecture: sim}): it
 * recognizes no file. {@link EngineOptions#modelPath}, when given, is a parameter file
 * ({@link SimProfile}); {@link EngineOptions#parameters} override it.
 */
public final class SimArchitecture implements Architecture {

  public static final String NAME = "sim";

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public boolean recognizes(Path model) {
    return false;
  }

  @Override
  public boolean readsModelFile() {
    return false;
  }

  @Override
  public LoadedModel open(EngineOptions options) throws IOException {
    return new SimModel(SimProfile.load(options.modelPath(), options.parameters()));
  }
}
