package io.duet.engine.impl;

import io.duet.engine.ByteChain;
import io.duet.engine.KvComponent;
import io.duet.engine.KvImport;
import io.duet.engine.KvLayout;
import io.duet.engine.KvTransferException;
import io.duet.engine.Sequence;

/**
 * {@link KvImport} into a {@link PagedEngine}: the blocks are allocated up front and every
 * failure frees them before it is thrown.
 */
final class PagedKvImport implements KvImport {

  private final PagedEngine engine;
  private final KvLayout layout;
  private final PagedKvStorage storage;
  private final BlockAllocator allocator;
  private final int[] tokens;
  private final int[] blocks;
  private final boolean[] written;
  private boolean closed;

  PagedKvImport(PagedEngine engine, KvLayout layout, PagedKvStorage storage,
      BlockAllocator allocator, int[] tokens, int[] blocks) {
    this.engine = engine;
    this.layout = layout;
    this.storage = storage;
    this.allocator = allocator;
    this.tokens = tokens;
    this.blocks = blocks;
    this.written = new boolean[blocks.length];
  }

  @Override
  public KvLayout layout() {
    return layout;
  }

  @Override
  public int[] tokens() {
    return tokens.clone();
  }

  @Override
  public int blockCount() {
    return blocks.length;
  }

  @Override
  public int slots(int index) {
    return BlockPayload.slots(storage, tokens.length, index);
  }

  @Override
  public int payloadBytes(int index) {
    return BlockPayload.bytes(layout, slots(index));
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
    int slots = slots(index);
    int block = blocks[index];
    payload.seek(0);
    for (int l = 0; l < layout.layers(); l++) {
      float[] layer = storage.layer(l);
      for (int c = 0; c < layout.components().size(); c++) {
        KvComponent component = layout.components().get(c);
        int runFloats = slots * component.runWidth();
        for (int run = 0; run < component.runs(); run++) {
          payload.getFloats(layer, storage.offset(block, c, run, 0), runFloats);
        }
      }
    }
    written[index] = true;
  }

  @Override
  public Sequence finish() {
    checkOpen();
    for (int i = 0; i < written.length; i++) {
      if (!written[i]) {
        abort();
        throw new KvTransferException(KvTransferException.Reason.TRUNCATED, "finished without "
            + "block " + i + " of " + blocks.length);
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
