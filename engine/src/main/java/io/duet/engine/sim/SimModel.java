package io.duet.engine.sim;

import io.duet.engine.KvComponent;
import io.duet.engine.ModelInfo;
import io.duet.engine.Tokenizer;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.ForwardResources;
import io.duet.engine.spi.LoadedModel;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * The simulated model: DeepSeek-V3's KV layout per token and layer (its MLA latent and rotary
 * key, divided by {@code kv-scale}), a byte vocabulary, and no weights.
 */
final class SimModel implements LoadedModel {

  private final SimProfile profile;
  private final ModelInfo info;
  private final Tokenizer tokenizer = new ByteTokenizer();
  private final String contentHash;

  SimModel(SimProfile profile) {
    this.profile = profile;
    this.info = new ModelInfo(SimArchitecture.NAME, ByteTokenizer.VOCAB, profile.contextLength(),
        ByteTokenizer.BOS, List.of(ByteTokenizer.EOS), "deepseek-v3",
        "simulated layers=" + profile.layers() + " kv=" + (profile.latentValues()
            + profile.ropeKeyValues()) + "/token/layer (576/" + profile.kvScale() + ")",
        profile.routedExperts());
    this.contentHash = sha256(profile.identity());
  }

  SimProfile profile() {
    return profile;
  }

  @Override
  public ModelInfo info() {
    return info;
  }

  @Override
  public int kvLayers() {
    return profile.layers();
  }

  @Override
  public List<KvComponent> kvComponents() {
    return List.of(new KvComponent("latent", KvComponent.F32, profile.latentValues(), 1),
        new KvComponent("rope_key", KvComponent.F32, profile.ropeKeyValues(), 1));
  }

  /** The hash of what fixes the KV and the text: engines of the same such parameters pair. */
  @Override
  public String contentHash() {
    return contentHash;
  }

  @Override
  public Tokenizer tokenizer() {
    return tokenizer;
  }

  @Override
  public String description() {
    return "SIMULATED engine (sim, pseudo-text, no weights): " + info.shape() + ", " + profile;
  }

  @Override
  public String weightsDescription() {
    return "none (simulated: time from a timing model, no arithmetic)";
  }

  @Override
  public ForwardPass forwardPass(ForwardResources resources) {
    return new SimForwardPass(profile, resources.kv());
  }

  private static String sha256(String text) {
    try {
      return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
          .digest(text.getBytes(StandardCharsets.UTF_8)));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is a required JDK algorithm", e);
    }
  }
}
