package io.duet.engine.impl;

import io.duet.engine.ByteChain;
import io.duet.engine.KvImport;
import io.duet.engine.KvLayout;
import io.duet.engine.KvSnapshot;
import io.duet.engine.KvTransferException;
import io.duet.engine.Sequence;

/**
 * {@link KvImport} into a {@link PagedEngine}: the blocks are allocated up front and every
 * failure frees them before it is thrown.
 */
final class PagedKvImport extends PagedKvBlocks implements KvImport {

  private final PagedEngine engine;
  private final BlockAllocator allocator;
  /** Which layers of which blocks arrived: {@code [block * layers + layer]}. */
  private final boolean[] written;
  private boolean closed;

  PagedKvImport(PagedEngine engine, KvLayout layout, PagedKvStorage storage,
      BlockAllocator allocator, int[] tokens, int[] blocks) {
    super(layout, storage, tokens, blocks);
    this.engine = engine;
    this.allocator = allocator;
    this.written = new boolean[blocks.length * layout.layers()];
  }

  @Override
  public void writeBlock(int index, ByteChain payload) {
    checkOpen();
    if (index < 0 || index >= blocks.length || payload.length() != payloadBytes(index)) {
      abort();
      throw new KvTransferException(KvTransferException.Reason.MALFORMED, "block " + index
          + " of " + payload.length() + " bytes does not fit an import of " + blocks.length
          + " blocks" + (index >= 0 && index < blocks.length
              ? " (" + payloadBytes(index) + " bytes expected)" : ""));
    }
    payload.seek(0);
    forEachRun(index, payload::getFloats);
    java.util.Arrays.fill(written, index * layout.layers(), (index + 1) * layout.layers(), true);
  }

  @Override
  public void writeBlockLayer(int index, int layer, ByteChain payload) {
    checkOpen();
    if (index < 0 || index >= blocks.length || layer < 0 || layer >= layout.layers()
        || payload.length() != layerPayloadBytes(index)) {
      abort();
      throw new KvTransferException(KvTransferException.Reason.MALFORMED, "layer " + layer
          + " of block " + index + " of " + payload.length() + " bytes does not fit an import "
          + "of " + blocks.length + " blocks of " + layout.layers() + " layers");
    }
    markWritten(index, layer);
    payload.seek(0);
    forEachRunOfLayer(index, layer, payload::getFloats);
  }

  @Override
  public void copyBlock(int index, KvSnapshot source) {
    for (int layer = 0; layer < layout.layers(); layer++) {
      copyBlockLayer(index, layer, source);
    }
  }

  @Override
  public void copyBlockLayer(int index, int layer, KvSnapshot source) {
    checkOpen();
    if (!(source instanceof PagedKvSnapshot snapshot)) {
      throw new IllegalArgumentException("not an export of this JVM's engines: " + source);
    }
    snapshot.requireComputed(index, layer);
    markWritten(index, layer);
    copyLayerFrom(snapshot, index, layer);
  }

  /** Records that layer {@code layer} of block {@code index} arrived; it may arrive once. */
  private void markWritten(int index, int layer) {
    if (written[index * layout.layers() + layer]) {
      abort();
      throw new KvTransferException(KvTransferException.Reason.MALFORMED, "layer " + layer
          + " of block " + index + " arrived twice");
    }
    written[index * layout.layers() + layer] = true;
  }

  @Override
  public Sequence finish() {
    checkOpen();
    for (int i = 0; i < written.length; i++) {
      if (!written[i]) {
        abort();
        throw new KvTransferException(KvTransferException.Reason.TRUNCATED, "finished without "
            + "layer " + i % layout.layers() + " of block " + i / layout.layers() + " of "
            + blocks.length);
      }
    }
    closed = true;
    return engine.adoptImported(tokens, blocks);
  }

  private void checkOpen() {
    if (closed) {
      throw new IllegalStateException("import already finished or aborted");
    }
  }

  @Override
  public void abort() {
    if (!closed) {
      closed = true;
      for (int block : blocks) {
        allocator.release(block);
      }
    }
  }
}
