package io.duet.engine.deepseek;

import io.duet.engine.compute.Kernels;
import io.duet.engine.compute.WorkerPool;
import io.duet.engine.spi.ExpertExchange;
import java.util.Arrays;

/**
 * The routed experts one rank holds ({@link ExpertPlacement}: its slots in every MoE layer) and
 * what it computes for the rows the group sends them: each mail's rows gathered by slot, every
 * slot with rows run as one set of parallel feed-forward jobs, and the results written back to
 * the mails. A row's result does not depend on the other rows, so it is the same whichever
 * rank sent it, with whatever else.
 */
final class ExpertShard implements ExpertExchange.Server {

  private final int dim;
  private final int moeHidden;
  private final int slots;
  /** {@code local[layer][slot]}: this rank's experts; null for a dense layer. */
  private final DeepSeekWeights.FeedForward[][] local;
  private final long weightBytes;
  private final FeedForwardJobs jobs;
  /** Per slot, where its gathered rows start; then one past the last. */
  private final int[] slotStart;
  private final int[] slotFill;
  /** For mail {@code s}'s row {@code i}, its gathered row, from {@code mailFirst[s]}. */
  private int[] gathered = new int[0];
  private final int[] mailFirst;
  private float[] in = new float[0];
  private float[] out = new float[0];
  private float[] gate = new float[0];
  private float[] up = new float[0];

  ExpertShard(DeepSeekWeights weights, ExpertPlacement placement, int rank, Kernels kernels,
      WorkerPool pool) {
    DeepSeekConfig c = weights.config();
    this.dim = c.hiddenSize();
    this.moeHidden = c.moeIntermediateSize();
    this.slots = placement.slotsPerRank();
    this.local = new DeepSeekWeights.FeedForward[weights.blocks()][];
    long bytes = 0;
    for (int l = 0; l < weights.blocks(); l++) {
      DeepSeekWeights.Experts experts = weights.layer(l).experts();
      if (experts == null) {
        continue;
      }
      local[l] = new DeepSeekWeights.FeedForward[slots];
      for (int i = 0; i < slots; i++) {
        DeepSeekWeights.FeedForward f =
            experts.routed()[placement.expertIn(rank * slots + i)];
        local[l][i] = f;
        bytes += f.bytes();
      }
    }
    this.weightBytes = bytes;
    this.jobs = new FeedForwardJobs(kernels, pool, dim, slots);
    this.slotStart = new int[slots + 1];
    this.slotFill = new int[slots];
    this.mailFirst = new int[placement.ranks() + 1];
  }

  /** The bytes of the expert weights this rank holds, over all layers. */
  long weightBytes() {
    return weightBytes;
  }

  @Override
  public void serve(ExpertExchange.Mail[] inbox) {
    int layer = -1;
    Arrays.fill(slotStart, 0);
    for (int s = 0; s < inbox.length; s++) {
      ExpertExchange.Mail mail = inbox[s];
      mailFirst[s + 1] = mailFirst[s] + mail.count();
      if (mail.count() == 0) {
        continue;
      }
      if (layer >= 0 && mail.layer() != layer) {
        throw new IllegalStateException("rows for layers " + layer + " and " + mail.layer()
            + " in one exchange");
      }
      layer = mail.layer();
      for (int i = 0; i < mail.count(); i++) {
        slotStart[mail.tag(i) + 1]++;
      }
    }
    if (layer < 0) {
      return;
    }
    int rows = mailFirst[inbox.length];
    ensureRoom(rows);
    for (int i = 0; i < slots; i++) {
      slotStart[i + 1] += slotStart[i];
    }
    Arrays.fill(slotFill, 0);
    for (int s = 0; s < inbox.length; s++) {
      ExpertExchange.Mail mail = inbox[s];
      for (int i = 0; i < mail.count(); i++) {
        int slot = mail.tag(i);
        int row = slotStart[slot] + slotFill[slot]++;
        gathered[mailFirst[s] + i] = row;
        System.arraycopy(mail.rows(), i * dim, in, row * dim, dim);
      }
    }
    jobs.clear();
    for (int i = 0; i < slots; i++) {
      int count = slotStart[i + 1] - slotStart[i];
      if (count > 0) {
        jobs.add(local[layer][i], in, slotStart[i], count, gate, up, slotStart[i] * moeHidden,
            out, slotStart[i]);
      }
    }
    jobs.run();
    for (int s = 0; s < inbox.length; s++) {
      ExpertExchange.Mail mail = inbox[s];
      for (int i = 0; i < mail.count(); i++) {
        System.arraycopy(out, gathered[mailFirst[s] + i] * dim, mail.results(), i * dim, dim);
      }
    }
  }

  private void ensureRoom(int rows) {
    if (gathered.length < rows) {
      int capacity = Math.max(rows, gathered.length * 2);
      gathered = new int[capacity];
      in = new float[capacity * dim];
      out = new float[capacity * dim];
      gate = new float[capacity * moeHidden];
      up = new float[capacity * moeHidden];
    }
  }
}
