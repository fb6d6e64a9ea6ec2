package io.duet.decode.impl;

import io.duet.engine.ContinuousBatch;
import io.duet.engine.Engine;
import io.duet.engine.FinishReason;
import io.duet.engine.Generation;
import io.duet.service.EngineThread;
import io.vertx.core.Context;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The engine thread of one decode rank and its {@link ContinuousBatch}: requests whose KV was
 * imported join with the first token their prefill instance sampled, every step takes one token
 * for each running request, finished, failed and cancelled ones leave and free their blocks.
 * When to step is the instance's {@link RankStepping}'s call. Deltas of a step go to the Vert.x
 * context in one hop.
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

  /** A delta, or a failure when {@code error} is set. */
  private record Delta(String requestId, String text, int tokens, String finish, String error) {
  }

  private final Context context;
  private final Listener listener;
  private final RankStepping stepping;
  private final ContinuousBatch<String> batch;
  /** What the command or step under way reports, published in one hop when it ends. */
  private List<Delta> deltas = new ArrayList<>();

  DecodeScheduler(Engine engine, int rank, RankStepping stepping, Context context,
      Listener listener) {
    super("duet-decode-engine-" + rank, engine);
    this.context = context;
    this.listener = listener;
    this.stepping = stepping;
    this.batch = new ContinuousBatch<>(engine, new ToDeltas());
  }

  /** Starts the engine thread, which the stepping may wake for a round of its group. */
  @Override
  public void start() {
    stepping.start(() -> submit(() -> { }));
    super.start();
  }

  /** Leaves the stepping first, so that no rank waits for this one, then stops. */
  @Override
  public void close() {
    stepping.leave();
    super.close();
  }

  /** MTP draft tokens the batch's steps verified; readable from any thread. */
  long draftsProposed() {
    return batch.draftsProposed();
  }

  /** Those that verification kept. */
  long draftsAccepted() {
    return batch.draftsAccepted();
  }

  /** Kept drafts over verified ones, 0 before any. */
  double acceptanceRate() {
    long proposed = batch.draftsProposed();
    return proposed == 0 ? 0 : (double) batch.draftsAccepted() / proposed;
  }

  /** Joins a sequence into the batch at the next step. */
  void join(Admission admission) {
    submit(() -> {
      batch.join(admission.requestId(), admission.generation(), admission.firstToken());
      publish();
    });
  }

  /** Stops a running request and frees its blocks; reports nothing more for it. */
  void cancel(String requestId) {
    submit(() -> batch.remove(requestId));
  }

  @Override
  protected boolean iteration() {
    if (!stepping.beforeStep(!batch.isEmpty())) {
      return false;
    }
    try {
      batch.step();
    } catch (RuntimeException e) {
      LOG.error("decode step over {} sequences failed", batch.size(), e);
      for (String requestId : batch.releaseAll()) {
        deltas.add(new Delta(requestId, "", 0, null, "decode step failed: " + e));
      }
    }
    publish();
    // Ask again at once, even with the batch now empty: a rank in lockstep steps on while any
    // other rank has work.
    return true;
  }

  /** Turns the batch's reports into deltas; a failure ends only its own request. */
  private final class ToDeltas implements ContinuousBatch.Listener<String> {
    @Override
    public void onToken(String requestId, Generation generation, Generation.Delta delta) {
      FinishReason finish = delta.finish();
      deltas.add(new Delta(requestId, delta.text(), 1, finish == null ? null : finish.wireName(),
          null));
    }

    @Override
    public void onFailure(String requestId, Generation generation, RuntimeException error) {
      LOG.error("request {} failed after {} tokens", requestId, generation.outputTokenCount(),
          error);
      deltas.add(new Delta(requestId, "", 0, null, "decode failed: " + error.getMessage()));
    }
  }

  private void publish() {
    if (deltas.isEmpty()) {
      return;
    }
    List<Delta> published = deltas;
    deltas = new ArrayList<>();
    context.runOnContext(v -> {
      for (Delta d : published) {
        if (d.error() != null) {
          listener.onFailure(d.requestId(), d.error());
        } else {
          listener.onDelta(d.requestId(), d.text(), d.tokens(), d.finish());
        }
      }
    });
  }
}
