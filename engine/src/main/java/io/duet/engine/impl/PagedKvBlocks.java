package io.duet.engine.impl;

import io.duet.engine.KvComponent;
import io.duet.engine.KvLayout;

/**
 * A sequence's blocks in the paged KV cache as a KV export or import sees them: block {@code i}
 * holds tokens {@code [i * blockSize, i * blockSize + slots(i))}, and its payload is, for each
 * layer, each component and each of its runs, the run's values of those slots.
 */
abstract class PagedKvBlocks {

  /** Visits one run of a block payload: {@code length} floats of {@code layer} at {@code at}. */
  @FunctionalInterface
  interface RunVisitor {
    void visit(float[] layer, int at, int length);
  }

  final KvLayout layout;
  final PagedKvStorage storage;
  final int[] tokens;
  final int[] blocks;

  PagedKvBlocks(KvLayout layout, PagedKvStorage storage, int[] tokens, int[] blocks) {
    this.layout = layout;
    this.storage = storage;
    this.tokens = tokens;
    this.blocks = blocks;
  }

  public KvLayout layout() {
    return layout;
  }

  public int[] tokens() {
    return tokens.clone();
  }

  public int blockCount() {
    return blocks.length;
  }

  public int slots(int index) {
    return Math.min(storage.blockSize(), tokens.length - index * storage.blockSize());
  }

  public int payloadBytes(int index) {
    return Math.toIntExact(layout.bytesPerToken() * slots(index));
  }

  public int layerPayloadBytes(int index) {
    return Math.toIntExact(layout.bytesPerToken() / layout.layers() * slots(index));
  }

  /** Visits the runs of block {@code index}'s payload in payload order. */
  void forEachRun(int index, RunVisitor visitor) {
    for (int l = 0; l < layout.layers(); l++) {
      forEachRunOfLayer(index, l, visitor);
    }
  }

  /** Visits the runs of layer {@code l} of block {@code index}'s payload in payload order. */
  void forEachRunOfLayer(int index, int l, RunVisitor visitor) {
    int block = blocks[index];
    float[] layer = storage.layer(l);
    forEachComponentRun(index, (c, run, floats) ->
        visitor.visit(layer, storage.offset(block, c, run, 0), floats));
  }

  /**
   * Copies layer {@code l} of block {@code index} from the same block of {@code source}, whose
   * layout is this one's: run by run, from one cache's arrays into the other's.
   */
  void copyLayerFrom(PagedKvBlocks source, int index, int l) {
    int from = source.blocks[index];
    int to = blocks[index];
    float[] sourceLayer = source.storage.layer(l);
    float[] layer = storage.layer(l);
    forEachComponentRun(index, (c, run, floats) -> System.arraycopy(sourceLayer,
        source.storage.offset(from, c, run, 0), layer, storage.offset(to, c, run, 0), floats));
  }

  /** One run of a block's layer: component {@code c}'s run {@code run}, {@code floats} long. */
  @FunctionalInterface
  private interface ComponentRunVisitor {
    void visit(int c, int run, int floats);
  }

  /** Visits the component runs of one layer of block {@code index} in payload order. */
  private void forEachComponentRun(int index, ComponentRunVisitor visitor) {
    int slots = slots(index);
    for (int c = 0; c < layout.components().size(); c++) {
      KvComponent component = layout.components().get(c);
      int runFloats = slots * component.runWidth();
      for (int run = 0; run < component.runs(); run++) {
        visitor.visit(c, run, runFloats);
      }
    }
  }
}
