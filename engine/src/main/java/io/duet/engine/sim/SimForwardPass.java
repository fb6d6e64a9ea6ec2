package io.duet.engine.sim;

import io.duet.engine.spi.ForwardBatch;
import io.duet.engine.spi.ForwardPass;
import io.duet.engine.spi.PagedKvCache;
import java.util.Arrays;
import java.util.concurrent.locks.LockSupport;

/**
 * The simulated forward pass: writes every row's KV (all layers, every value, so that KV export,
 * transfer and import move the bytes the layout says), reads the text state back from the KV of
 * the position before (so that KV that arrives damaged or misplaced changes what is generated),
 * writes logits that favour {@link PseudoText}'s next byte, then waits until the time
 * {@link SimTiming} gives the batch has passed since it began.
 *
 * <p>The text state of a position is kept in its first two latent values of layer 0: a 24-bit
 * hash of the sequence up to it, and the {@link PseudoText} cursor; floats hold both exactly.
 */
final class SimForwardPass implements ForwardPass {

  private static final int HASH_MASK = 0xFFFFFF;
  private static final float EXPECTED_LOGIT = 10f;
  private static final float ALTERNATIVE_LOGIT = 7f;

  private final PagedKvCache kv;
  private final SimTiming timing;
  private final int initialHash;
  private final int blockSize;
  private final int layers;

  SimForwardPass(SimProfile profile, PagedKvCache kv) {
    this.kv = kv;
    this.timing = new SimTiming(profile);
    this.initialHash = mix((int) profile.seed(), (int) (profile.seed() >>> 32));
    this.blockSize = kv.blockSize();
    this.layers = profile.layers();
  }

  @Override
  public void forward(ForwardBatch batch, float[] logits) {
    long start = System.nanoTime();
    int vocab = ByteTokenizer.VOCAB;
    int sequences = 0;
    long attended = 0;
    int[] table = null;
    int logitRow = 0;
    for (int row = 0; row < batch.rowCount(); row++) {
      if (batch.blockTable(row) != table) {
        table = batch.blockTable(row);
        sequences++;
      }
      int position = batch.position(row);
      attended += position;
      int cursor = store(table, position, batch.token(row));
      for (; logitRow < batch.logitRowCount() && batch.logitSourceRow(logitRow) == row;
          logitRow++) {
        int base = logitRow * vocab;
        Arrays.fill(logits, base, base + vocab, 0f);
        int expected = PseudoText.expected(cursor);
        logits[base + expected] = EXPECTED_LOGIT;
        // a lowercase letter other than the expected byte, for sampling at a temperature
        int alternative = 'a' + Math.floorMod(expected * 7 + position, 26);
        if (alternative != expected) {
          logits[base + alternative] = ALTERNATIVE_LOGIT;
        }
      }
    }
    int rows = batch.rowCount();
    // one row per sequence is a decode step; the engine never mixes the two in one pass here
    long nanos = sequences == rows ? timing.decodeNanos(rows, attended + rows)
        : timing.prefillNanos(rows, attended);
    // The modelled time is spread over the layers, so that KV streamed layer by layer leaves
    // as it would from a real pass.
    for (int layer = 0; layer < layers; layer++) {
      waitUntil(start + nanos * (layer + 1) / layers);
      batch.layerStored(layer);
    }
  }

  /**
   * Writes the KV of {@code token} at {@code position} of the sequence whose blocks are
   * {@code table}, from the state stored at the position before; returns its cursor.
   */
  private int store(int[] table, int position, int token) {
    float[] first = kv.layer(0);
    int hash;
    int cursor;
    if (position == 0) {
      hash = mix(initialHash, token);
      cursor = PseudoText.next(-1, token, hash);
    } else {
      int before = kv.offset(table[(position - 1) / blockSize], 0, 0,
          (position - 1) % blockSize);
      hash = mix((int) first[before], token);
      cursor = PseudoText.next((int) first[before + 1], token, hash);
    }
    int block = table[position / blockSize];
    int slot = position % blockSize;
    for (int layer = 0; layer < layers; layer++) {
      float[] values = kv.layer(layer);
      for (int component = 0; component < kv.components().size(); component++) {
        int offset = kv.offset(block, component, 0, slot);
        int width = kv.components().get(component).runWidth();
        for (int i = 0; i < width; i++) {
          values[offset + i] = (mix(hash, (layer << 16) | (component << 12) | i) & 0xFFFF)
              / 65536f;
        }
      }
    }
    int own = kv.offset(block, 0, 0, slot);
    first[own] = hash;
    first[own + 1] = cursor;
    return cursor;
  }

  /** A 24-bit hash of {@code state} followed by {@code value}. */
  private static int mix(int state, int value) {
    int h = state * 0x9E3779B1 + value;
    h ^= h >>> 15;
    h *= 0x85EBCA77;
    h ^= h >>> 13;
    return h & HASH_MASK;
  }

  private static void waitUntil(long deadline) {
    for (long left = deadline - System.nanoTime(); left > 0; left = deadline - System.nanoTime()) {
      LockSupport.parkNanos(left);
    }
  }
}
