package io.duet.engine.deepseek;

import java.util.ArrayList;
import java.util.List;

/**
 * Where the routed experts of every MoE layer live in an expert-parallel group: {@code slots}
 * expert slots, {@code slots / ranks} on each rank, rank {@code r} holding slots
 * {@code [r * perRank, (r + 1) * perRank)}. Slot {@code s < experts} holds expert {@code s}; the
 * slots beyond hold redundant copies of experts {@code 0, 1, ...} in turn (as DeepSeek's EP144
 * runs 288 slots for its 256 experts), which share the rows sent to that expert. Which copy a
 * row goes to never changes its result: the copies are the same weights run by the same code.
 */
final class ExpertPlacement {

  private final int experts;
  private final int ranks;
  private final int perRank;
  /** For each expert, the slots holding it: its own first, then its copies. */
  private final int[][] slotsOf;

  /**
   * @throws IllegalArgumentException unless {@code ranks} divides {@code slots} and
   *     {@code experts <= slots}
   */
  ExpertPlacement(int experts, int ranks, int slots) {
    if (slots < experts || slots % ranks != 0) {
      throw new IllegalArgumentException(slots + " expert slots cannot hold " + experts
          + " routed experts evenly over " + ranks + " ranks: the slots must be at least the "
          + "experts and a multiple of the ranks");
    }
    this.experts = experts;
    this.ranks = ranks;
    this.perRank = slots / ranks;
    List<List<Integer>> holders = new ArrayList<>();
    for (int e = 0; e < experts; e++) {
      holders.add(new ArrayList<>(List.of(e)));
    }
    for (int s = experts; s < slots; s++) {
      holders.get((s - experts) % experts).add(s);
    }
    slotsOf = holders.stream().map(h -> h.stream().mapToInt(Integer::intValue).toArray())
        .toArray(int[][]::new);
  }

  int ranks() {
    return ranks;
  }

  /** Slots on each rank. */
  int slotsPerRank() {
    return perRank;
  }

  /** The expert slot {@code slot} holds. */
  int expertIn(int slot) {
    return slot < experts ? slot : (slot - experts) % experts;
  }

  /**
   * The slot that serves the {@code n}-th row routed to {@code expert} in a step (any
   * {@code n}: the rows take the expert's copies in turn).
   */
  int slotFor(int expert, int n) {
    int[] slots = slotsOf[expert];
    return slots[n % slots.length];
  }

  int rankOf(int slot) {
    return slot / perRank;
  }

  /** The index of {@code slot} among its rank's slots. */
  int localIndex(int slot) {
    return slot % perRank;
  }
}
