package io.duet.engine;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.function.ToIntFunction;

/**
 * The generations one engine decodes together: each {@link #step} is one forward pass over all
 * of them and one token for each. Members join between steps (a freshly allocated prompt is
 * prefilled by its first step, in the same pass as the others' decode) and leave as soon as
 * they finish, so a long generation never holds the others back.
 *
 * <p>The batch owns its members' sequences: every way out (finished, failed, removed) releases
 * the sequence's blocks. Who may join (batch slots, KV reservations, queues) is the caller's
 * policy, not the batch's.
 *
 * <p>With an engine that drafts ({@link Engine#draftTokens}), each step also verifies the draft
 * that follows each member's newest token and may so give it two tokens: the draft, when
 * {@link Generation#verifyDraft} keeps it, and the one after. Stop conditions hold token by
 * token, so a generation never gets more than it would one token a step.
 *
 * <p>Not thread-safe: it belongs to the thread that drives the engine.
 *
 * @param <T> what the caller knows a generation by (a prompt's index, a request id); unique
 *     within the batch
 */
public final class ContinuousBatch<T> {

  /**
   * What becomes of the members, told on the driving thread while the batch is mid-way through
   * a step or join, so a listener must not change the batch. One that throws ends the step or
   * join there, and the batch is then fit only for {@link #releaseAll}.
   */
  public interface Listener<T> {
    /**
     * A token was accepted for {@code tag}. When {@code delta.finish()} is set, the generation
     * is over: its blocks are freed and it leaves the batch. Otherwise the token is appended and
     * the next step computes it.
     */
    void onToken(T tag, Generation generation, Generation.Delta delta);

    /**
     * Sampling, accepting or appending a token for {@code tag} threw. That generation alone is
     * over: its blocks are freed and it leaves the batch; the others go on.
     */
    void onFailure(T tag, Generation generation, RuntimeException error);
  }

  private record Member<T>(T tag, Generation generation) {
  }

  private final Engine engine;
  private final Listener<T> listener;
  private final List<Member<T>> members = new ArrayList<>();
  private final List<Sequence> stepList = new ArrayList<>();
  /** Members whose next token goes into the next step with a draft after it. */
  private final List<Member<T>> drafting = new ArrayList<>();
  private final List<Sequence> draftList = new ArrayList<>();
  private int[] draftNext = new int[16];
  // Written by the driving thread only; read by metrics on others.
  private volatile long draftsProposed;
  private volatile long draftsAccepted;

  public ContinuousBatch(Engine engine, Listener<T> listener) {
    this.engine = engine;
    this.listener = listener;
  }

  /** Generations in the batch. */
  public int size() {
    return members.size();
  }

  public boolean isEmpty() {
    return members.isEmpty();
  }

  /**
   * Adds a generation whose sequence still has tokens to compute (a prompt just allocated); its
   * first token is sampled after the next step.
   */
  public void join(T tag, Generation generation) {
    members.add(new Member<>(tag, generation));
  }

  /**
   * Adds a generation whose next token was sampled elsewhere (by the prefill instance that
   * computed its prompt): the token is accepted and reported at once, as a step would, and the
   * generation joins only if it goes on.
   */
  public void join(T tag, Generation generation, int token) {
    // The hidden state a draft needs is the prefill engine's: this token goes on its own.
    Member<T> member = new Member<>(tag, generation);
    if (advance(member, g -> token, false)) {
      members.add(member);
    }
  }

  /** Draft tokens the members' steps have verified. */
  public long draftsProposed() {
    return draftsProposed;
  }

  /** Those of them that were kept. */
  public long draftsAccepted() {
    return draftsAccepted;
  }

  /**
   * One forward pass over every member, then one token for each (or two, an accepted draft and
   * the next), reported to the listener in batch order; with a drafting engine, then one draft
   * pass for the members that go on.
   *
   * @throws RuntimeException when the forward pass fails; no token was taken and the members are
   *     as they were, for the caller to {@link #releaseAll}. When the draft pass fails, the
   *     tokens reported stand and the members are fit only for {@link #releaseAll}.
   */
  public void step() {
    stepList.clear();
    for (Member<T> member : members) {
      stepList.add(member.generation().sequence());
    }
    engine.step(stepList);
    drafting.clear();
    for (Iterator<Member<T>> it = members.iterator(); it.hasNext(); ) {
      Member<T> member = it.next();
      boolean goesOn = member.generation().sequence().logitRows() > 1
          ? advanceVerifying(member) : advance(member, Generation::sampleNext, true);
      if (!goesOn) {
        it.remove();
      }
    }
    if (!drafting.isEmpty()) {
      appendDrafted();
    }
  }

  /**
   * Takes the generation known as {@code tag} out of the batch and frees its blocks; the
   * listener hears nothing more of it.
   *
   * @return whether it was in the batch
   */
  public boolean remove(T tag) {
    for (Iterator<Member<T>> it = members.iterator(); it.hasNext(); ) {
      Member<T> member = it.next();
      if (member.tag().equals(tag)) {
        it.remove();
        engine.release(member.generation().sequence());
        return true;
      }
    }
    return false;
  }

  /** Frees every member's blocks and empties the batch; returns their tags in batch order. */
  public List<T> releaseAll() {
    List<T> tags = new ArrayList<>(members.size());
    for (Member<T> member : members) {
      engine.release(member.generation().sequence());
      tags.add(member.tag());
    }
    members.clear();
    return tags;
  }

  /**
   * Takes the generation's next token, appends it (or leaves it to {@link #appendDrafted}) or,
   * at the end, frees the sequence, and tells the listener. Any failure ends only this
   * generation.
   *
   * @return whether the generation goes on
   */
  private boolean advance(Member<T> member, ToIntFunction<Generation> nextToken,
      boolean mayDraft) {
    Generation generation = member.generation();
    Generation.Delta delta;
    try {
      delta = generation.accept(nextToken.applyAsInt(generation));
    } catch (RuntimeException e) {
      return fail(member, e);
    }
    return report(member, delta, mayDraft);
  }

  /**
   * {@link #advance} for a member whose step verified a draft: the draft, when kept, is its
   * next token and the token sampled after it the one after; else the draft is dropped and the
   * token drawn in its place is the next.
   */
  private boolean advanceVerifying(Member<T> member) {
    Generation generation = member.generation();
    Sequence sequence = generation.sequence();
    Generation.Delta delta;
    draftsProposed++;
    try {
      int token = generation.verifyDraft();
      if (token == sequence.lastToken()) {
        draftsAccepted++;
        delta = generation.acceptDraft(token);
        if (delta.finish() == null) {
          listener.onToken(member.tag(), generation, delta);
          delta = generation.accept(generation.sampleNext());
        }
      } else {
        engine.rejectDrafts(sequence, 1);
        delta = generation.accept(token);
      }
    } catch (RuntimeException e) {
      return fail(member, e);
    }
    return report(member, delta, true);
  }

  /**
   * Tells the listener of the member's newest token and, when the generation goes on, has it
   * appended: with a draft when it {@code mayDraft}, the engine drafts and two more tokens may
   * come, else alone.
   */
  private boolean report(Member<T> member, Generation.Delta delta, boolean mayDraft) {
    Generation generation = member.generation();
    Sequence sequence = generation.sequence();
    if (delta.finish() != null) {
      engine.release(sequence);
      listener.onToken(member.tag(), generation, delta);
      return false;
    }
    if (mayDraft && engine.draftTokens() > 0 && generation.tokensLeft() >= 2
        && engine.contextRemaining(sequence) >= 2) {
      drafting.add(member);
    } else if (!appendAlone(member)) {
      return false;
    }
    listener.onToken(member.tag(), generation, delta);
    return true;
  }

  private boolean appendAlone(Member<T> member) {
    Generation generation = member.generation();
    try {
      engine.append(generation.sequence(), generation.lastOutputToken());
      return true;
    } catch (RuntimeException e) {
      return fail(member, e);
    }
  }

  /** One draft pass for the members in {@link #drafting}, each token appended with its draft. */
  private void appendDrafted() {
    draftList.clear();
    if (draftNext.length < drafting.size()) {
      draftNext = new int[drafting.size() * 2];
    }
    for (int i = 0; i < drafting.size(); i++) {
      Generation generation = drafting.get(i).generation();
      draftList.add(generation.sequence());
      draftNext[i] = generation.lastOutputToken();
    }
    int[] drafts = engine.draft(draftList, Arrays.copyOf(draftNext, drafting.size()));
    for (int i = 0; i < drafting.size(); i++) {
      Member<T> member = drafting.get(i);
      try {
        engine.append(draftList.get(i), new int[] {draftNext[i], drafts[i]}, 2);
      } catch (RuntimeException e) {
        members.remove(member);
        fail(member, e);
      }
    }
    drafting.clear();
  }

  /** Ends a member's generation on a failure of its own. */
  private boolean fail(Member<T> member, RuntimeException error) {
    engine.release(member.generation().sequence());
    listener.onFailure(member.tag(), member.generation(), error);
    return false;
  }
}
