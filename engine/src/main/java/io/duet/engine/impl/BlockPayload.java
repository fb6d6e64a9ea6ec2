package io.duet.engine.impl;

import io.duet.engine.KvLayout;

/** Sizes of the per-block payload that KV snapshots and imports exchange. */
final class BlockPayload {

  private BlockPayload() {
  }

  /** Token slots block {@code index} of a {@code tokens}-token sequence carries. */
  static int slots(PagedKvStorage storage, int tokens, int index) {
    return Math.min(storage.blockSize(), tokens - index * storage.blockSize());
  }

  /** Bytes of a block payload of {@code slots} slots. */
  static int bytes(KvLayout layout, int slots) {
    return Math.toIntExact(layout.bytesPerToken() * slots);
  }
}
