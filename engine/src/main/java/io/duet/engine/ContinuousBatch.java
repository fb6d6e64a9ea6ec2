package io.duet.engine;

import java.util.ArrayList;
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
    if (advance(tag, generation, g -> token)) {
      members.add(new Member<>(tag, generation));
    }
  }

  /**
   * One forward pass over every member, then one token for each, reported to the listener in
   * batch order.
   *
   * @throws RuntimeException when the forward pass fails; no token was taken and the members are
   *     as they were, for the caller to {@link #releaseAll}
   */
  public void step() {
    stepList.clear();
    for (Member<T> member : members) {
      stepList.add(member.generation().sequence());
    }
    engine.step(stepList);
    for (Iterator<Member<T>> it = members.iterator(); it.hasNext(); ) {
      Member<T> member = it.next();
      if (!advance(member.tag(), member.generation(), Generation::sampleNext)) {
        it.remove();
      }
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
   * Takes the generation's next token, appends it or, at the end, frees the sequence, and tells
   * the listener. Any failure ends only this generation.
   *
   * @return whether the generation goes on
   */
  private boolean advance(T tag, Generation generation, ToIntFunction<Generation> nextToken) {
    Sequence sequence = generation.sequence();
    Generation.Delta delta;
    try {
      delta = generation.accept(nextToken.applyAsInt(generation));
      if (delta.finish() == null) {
        engine.append(sequence, delta.token());
      }
    } catch (RuntimeException e) {
      engine.release(sequence);
      listener.onFailure(tag, generation, e);
      return false;
    }
    if (delta.finish() != null) {
      engine.release(sequence);
    }
    listener.onToken(tag, generation, delta);
    return delta.finish() == null;
  }
}
