package io.duet.engine;

import java.util.List;
import java.util.stream.Collectors;

/**
 * What must agree between two engines for KV blocks to move from one to the other: the same
 * weights (content hash), the same components per token and layer, the same layer count and
 * block size.
 *
 * @param modelHash SHA-256 of the model's weights, lowercase hex
 * @param layers layers that store KV
 * @param components what each token stores in each layer, in storage order
 * @param blockSize token slots per cache block
 */
public record KvLayout(String modelHash, int layers, List<KvComponent> components,
    int blockSize) {

  public KvLayout {
    components = List.copyOf(components);
    if (layers <= 0 || blockSize <= 0 || components.isEmpty()) {
      throw new IllegalArgumentException("a KV layout needs layers, components and a block size");
    }
  }

  /** A compact text form, e.g. {@code sha256:1f2e3d4c5b6a/L6/k:f32[6x48],v:f32[6x48]/B16}. */
  public String fingerprint() {
    return "sha256:" + modelHash.substring(0, Math.min(12, modelHash.length())) + "/L" + layers
        + "/" + components.stream().map(KvComponent::describe).collect(Collectors.joining(","))
        + "/B" + blockSize;
  }

  /** Bytes one token stores across all layers. */
  public long bytesPerToken() {
    long perLayer = 0;
    for (KvComponent c : components) {
      perLayer += c.bytesPerToken();
    }
    return perLayer * layers;
  }

  /** Why {@code other} cannot be imported into an engine of this layout, or null when it can. */
  public String mismatch(KvLayout other) {
    if (!modelHash.equals(other.modelHash)) {
      return "model hash " + other.modelHash + " differs from this engine's " + modelHash;
    }
    if (layers != other.layers || !components.equals(other.components)) {
      return "KV of " + other.fingerprint() + " differs from this engine's " + fingerprint();
    }
    if (blockSize != other.blockSize) {
      return "block size " + other.blockSize + " differs from " + blockSize;
    }
    return null;
  }
}
