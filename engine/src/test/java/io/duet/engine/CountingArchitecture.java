package io.duet.engine;

import io.duet.engine.llama.Llama2cArchitecture;
import io.duet.engine.spi.Architecture;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.LoadedModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * llama2.c checkpoints under another name, counting how often their weights are loaded and let
 * go of: how the tests see how many times engines loaded a model. Registered in the tests'
 * {@code META-INF/services}; it recognizes no file, so only engines that name it use it.
 */
public final class CountingArchitecture implements Architecture {

  public static final String NAME = "counting-llama2c";
  /** Models opened and closed since the JVM started. */
  static final AtomicInteger OPENED = new AtomicInteger();
  static final AtomicInteger CLOSED = new AtomicInteger();

  private final Architecture llama = new Llama2cArchitecture();

  @Override
  public String name() {
    return NAME;
  }

  @Override
  public boolean recognizes(Path model) {
    return false;
  }

  @Override
  public LoadedModel open(EngineOptions options) throws IOException {
    LoadedModel model = llama.open(options);
    OPENED.incrementAndGet();
    return new Counted(model);
  }

  /** The llama2.c model, counting its close. */
  private record Counted(LoadedModel model) implements LoadedModel {

    @Override
    public ModelInfo info() {
      return model.info();
    }

    @Override
    public int kvLayers() {
      return model.kvLayers();
    }

    @Override
    public List<KvComponent> kvComponents() {
      return model.kvComponents();
    }

    @Override
    public String contentHash() {
      return model.contentHash();
    }

    @Override
    public Tokenizer tokenizer() {
      return model.tokenizer();
    }

    @Override
    public String description() {
      return model.description();
    }

    @Override
    public String weightsDescription() {
      return model.weightsDescription();
    }

    @Override
    public ForwardPass forwardPass(ForwardResources resources) {
      return model.forwardPass(resources);
    }

    @Override
    public void close() {
      model.close();
      CLOSED.incrementAndGet();
    }
  }
}
