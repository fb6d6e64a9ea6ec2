package io.duet.decode.impl;

import io.duet.engine.Engine;
import io.duet.engine.FinishReason;
import io.duet.engine.Generation;
import io.duet.engine.Sequence;
import io.duet.service.EngineThread;
import io.vertx.core.Context;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Continuous batching on the engine thread: sequences join at the next step, every step
 * samples one token for each running sequence, finished ones leave and free their blocks.
 * Deltas of a step go to the Vert.x context in one hop.
 */
final class DecodeScheduler extends EngineThread {

  private static final Logger LOG = LoggerFactory.getLogger(DecodeScheduler.class);

  /** What the scheduler reports for one request after a step. */
  interface Listener {
    /**
     * On the Vert.x context. {@code finish} is null while the request goes on; every sampled
     * token counts, a final stop token included (as vLLM counts completion tokens).
     */
    void onDelta(String requestId, String text, int tokens, String finish);

    /** On the Vert.x context: the request was dropped because the engine failed. */
    void onFailure(String requestId, String message);
  }

  /** A sequence joining the batch, its generation state and first token. */
  record Admission(String requestId, Generation generation, int firstToken) {
  }

  private record Active(String requestId, Generation generation) {
  }

  /** A delta, or a failure when {@code error} is set. */
  private record Delta(String requestId, String text, int tokens, String finish, String error) {
  }

  private final Engine engine;
  private final Context context;
  private final Listener listener;
  private final List<Active> running = new ArrayList<>();
  private final List<Sequence> stepList = new ArrayList<>();

  DecodeScheduler(Engine engine, Context context, Listener listener) {
    super("duet-decode-engine");
    this.engine = engine;
    this.context = context;
    this.listener = listener;
  }

  /** Joins a sequence into the batch at the next step. */
  void join(Admission admission) {
    submit(() -> {
      List<Delta> deltas = new ArrayList<>(1);
      if (accept(admission.requestId(), admission.generation(), admission.firstToken(), deltas)) {
        running.add(new Active(admission.requestId(), admission.generation()));
      }
      publish(deltas);
    });
  }

  /** Stops a running request and frees its blocks; reports nothing more for it. */
  void cancel(String requestId) {
    submit(() -> {
      for (Iterator<Active> it = running.iterator(); it.hasNext(); ) {
        Active active = it.next();
        if (active.requestId().equals(requestId)) {
          it.remove();
          engine.release(active.generation().sequence());
        }
      }
    });
  }

  @Override
  protected boolean iteration() {
    if (running.isEmpty()) {
      return false;
    }
    stepList.clear();
    for (Active active : running) {
      stepList.add(active.generation().sequence());
    }
    List<Delta> deltas = new ArrayList<>(running.size());
    try {
      engine.step(stepList);
    } catch (RuntimeException e) {
      LOG.error("decode step over {} sequences failed", running.size(), e);
      for (Active active : running) {
        engine.release(active.generation().sequence());
        deltas.add(new Delta(active.requestId(), "", 0, null, "decode step failed: " + e));
      }
      running.clear();
      publish(deltas);
      return false;
    }
    for (Iterator<Active> it = running.iterator(); it.hasNext(); ) {
      Active active = it.next();
      Generation generation = active.generation();
      if (!accept(active.requestId(), generation, -1, deltas)) {
        it.remove();
      }
    }
    publish(deltas);
    return !running.isEmpty();
  }

  /**
   * Records a token ({@code -1}: sample it from the sequence's logits); returns whether the
   * sequence goes on (and then appends the token). Any failure ends only this sequence.
   */
  private boolean accept(String requestId, Generation generation, int given, List<Delta> out) {
    Sequence sequence = generation.sequence();
    Generation.Delta delta;
    int token = given;
    try {
      if (token < 0) {
        token = generation.sampleNext();
      }
      delta = generation.accept(token);
      if (delta.finish() == null) {
        engine.append(sequence, token);
      }
    } catch (RuntimeException e) {
      LOG.error("request {} failed after {} tokens", requestId, generation.outputTokenCount(), e);
      engine.release(sequence);
      out.add(new Delta(requestId, "", 0, null, "decode failed: " + e.getMessage()));
      return false;
    }
    FinishReason finish = delta.finish();
    if (finish == null) {
      out.add(new Delta(requestId, delta.text(), 1, null, null));
      return true;
    }
    engine.release(sequence);
    out.add(new Delta(requestId, delta.text(), 1, finish.wireName(), null));
    return false;
  }

  private void publish(List<Delta> deltas) {
    if (deltas.isEmpty()) {
      return;
    }
    context.runOnContext(v -> {
      for (Delta d : deltas) {
        if (d.error() != null) {
          listener.onFailure(d.requestId(), d.error());
        } else {
          listener.onDelta(d.requestId(), d.text(), d.tokens(), d.finish());
        }
      }
    });
  }
}
