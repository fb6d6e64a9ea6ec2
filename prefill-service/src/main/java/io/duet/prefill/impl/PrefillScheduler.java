package io.duet.prefill.impl;

import io.duet.kv.LeaseTable;
import io.duet.contract.Failure;
import io.duet.contract.ServiceException;
import io.duet.engine.Engine;
import io.duet.engine.Generation;
import io.duet.engine.KvCacheFullException;
import io.duet.engine.Sampler;
import io.duet.engine.SamplingParams;
import io.duet.engine.Sequence;
import io.duet.service.EngineThread;
import io.vertx.core.Context;
import io.vertx.core.Promise;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import io.duet.kv.FirstToken;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Batches queued prompts within a token budget, prefills them together, samples each one's
 * first token and leases its KV. Runs on its own engine thread; results are completed on the
 * Vert.x context that submitted them.
 */
public final class PrefillScheduler extends EngineThread {

  private static final Logger LOG = LoggerFactory.getLogger(PrefillScheduler.class);

  /** A prompt to prefill. */
  public static final class Job {
    final String requestId;
    final int[] prompt;
    final SamplingParams params;
    /** Whether a first token that ends the request frees the KV instead of leasing it. */
    final boolean endAtFirstToken;
    final Promise<Outcome> promise;
    final Context context;
    /**
     * Told the transfer id and pull key of a lease taken before the prompt is computed; null:
     * no such lease.
     */
    final BiConsumer<String, String> onLeased;
    final long queuedNanos = System.nanoTime();
    volatile boolean cancelled;

    /**
     * @param endAtFirstToken the requester streams the first token itself: when that token
     *     ends the request, no decode instance will pull the KV, so it is freed at once
     * @param onLeased when not null, the KV is leased as the prompt's batch starts and served
     *     layer by layer as it is computed ({@link LeaseTable#leaseWhileComputing}); it gets
     *     the transfer id and pull key then, on {@code context}
     */
    public Job(String requestId, int[] prompt, SamplingParams params, boolean endAtFirstToken,
        Promise<Outcome> promise, Context context, BiConsumer<String, String> onLeased) {
      this.requestId = requestId;
      this.prompt = prompt;
      this.params = params;
      this.endAtFirstToken = endAtFirstToken;
      this.promise = promise;
      this.context = context;
      this.onLeased = onLeased;
    }

    public int promptTokens() {
      return prompt.length;
    }
  }

  /**
   * A prefilled prompt, what its first token adds, and its lease.
   *
   * @param first the first token's text and, when it ends the generation, why
   * @param transferId the lease; null when the first token ended a job that asked for it
   *     ({@link Job#endAtFirstToken}) and the KV was freed
   */
  public record Outcome(int firstToken, long samplerState, Generation.Delta first,
      int promptTokens, int cachedPromptTokens, String transferId, int blockCount,
      long queueMicros, long prefillMicros) {
  }

  private final LeaseTable leases;
  private final int maxBatchTokens;
  private final int maxWaiting;
  private final ArrayDeque<Job> queue = new ArrayDeque<>();
  private final AtomicInteger waiting = new AtomicInteger();
  private final AtomicInteger running = new AtomicInteger();
  private final AtomicLong inFlightTokens = new AtomicLong();
  private final Map<String, Job> jobs = new ConcurrentHashMap<>();

  public PrefillScheduler(Engine engine, LeaseTable leases, int maxBatchTokens, int maxWaiting) {
    super("duet-prefill-engine", engine);
    this.leases = leases;
    this.maxBatchTokens = maxBatchTokens;
    this.maxWaiting = maxWaiting;
  }

  /**
   * Queues a job, or fails it at once when the queue is full. The caller has checked that the
   * prompt fits the context ({@link PromptLimits}).
   */
  public void enqueue(Job job) {
    if (waiting.incrementAndGet() > maxWaiting) {
      waiting.decrementAndGet();
      job.promise.fail(new ServiceException(Failure.OVERLOADED, maxWaiting
          + " prompts are already waiting for prefill"));
      return;
    }
    inFlightTokens.addAndGet(job.prompt.length);
    jobs.put(job.requestId, job);
    submit(() -> queue.add(job));
  }

  /**
   * Cancels a request: a queued job is dropped, a job being prefilled releases its KV right
   * after. The caller also ends the request's lease if it already has one.
   */
  public void cancel(String requestId) {
    Job active = jobs.get(requestId);
    if (active != null) {
      active.cancelled = true;
    }
    submit(() -> {
      for (Iterator<Job> it = queue.iterator(); it.hasNext(); ) {
        Job job = it.next();
        if (job.requestId.equals(requestId)) {
          it.remove();
          waiting.decrementAndGet();
          finish(job);
          complete(job, null, new ServiceException(Failure.CANCELLED, "cancelled"));
        }
      }
    });
  }

  public int waiting() {
    return waiting.get();
  }

  /** Whether a prompt is queued or being prefilled, not yet answered. Any thread. */
  public boolean hasWork() {
    return !jobs.isEmpty();
  }

  public int running() {
    return running.get();
  }

  public long inFlightTokens() {
    return inFlightTokens.get();
  }

  /** Wakes the engine thread when blocks were freed elsewhere. */
  public void wake() {
    submit(() -> { });
  }

  @Override
  protected boolean iteration() {
    if (queue.isEmpty()) {
      return false;
    }
    List<Job> batch = new ArrayList<>();
    List<Sequence> sequences = new ArrayList<>();
    int tokens = 0;
    while (!queue.isEmpty() && (batch.isEmpty() || tokens + queue.peek().prompt.length
        <= maxBatchTokens)) {
      Job job = queue.peek();
      Sequence sequence;
      try {
        sequence = engine().allocate(job.prompt);
      } catch (KvCacheFullException e) {
        if (batch.isEmpty() && !leases.holdsBlocks()) {
          refuse(job, new ServiceException(Failure.OVERLOADED,
              "the prompt does not fit into this prefill instance's KV cache"));
          continue;
        }
        // Leases will end (pulled or expired) and free blocks; their release wakes us.
        break;
      } catch (IllegalArgumentException e) {
        // A prompt of token ids the engine refuses (outside the vocabulary) must leave the
        // queue, or it would fail again at its head every round.
        refuse(job, new ServiceException(Failure.BAD_REQUEST, e.getMessage()));
        continue;
      }
      dequeue();
      batch.add(job);
      sequences.add(sequence);
      tokens += job.prompt.length;
    }
    if (batch.isEmpty()) {
      return false;
    }
    running.set(batch.size());
    String[] streamed = leaseStreamed(batch, sequences);
    long start = System.nanoTime();
    try {
      engine().step(sequences);
    } catch (RuntimeException e) {
      LOG.error("prefill of {} prompts failed", batch.size(), e);
      for (int i = 0; i < batch.size(); i++) {
        drop(sequences.get(i), streamed[i], "prefill failed");
        finish(batch.get(i));
        complete(batch.get(i), null, new ServiceException(Failure.INTERNAL,
            "prefill failed: " + e.getMessage()));
      }
      running.set(0);
      return !queue.isEmpty();
    }
    long prefillMicros = (System.nanoTime() - start) / 1000;
    for (int i = 0; i < batch.size(); i++) {
      Job job = batch.get(i);
      Sequence sequence = sequences.get(i);
      finish(job);
      if (job.cancelled) {
        drop(sequence, streamed[i], "cancelled");
        complete(job, null, new ServiceException(Failure.CANCELLED, "cancelled"));
        continue;
      }
      Sampler sampler = new Sampler(job.params, engine().info().vocabSize());
      int first;
      Generation.Delta delta;
      String transferId = null;
      try {
        // The text as the decode instance's generation will see it: it accepts the same token
        // after the same prompt, so the two agree on what is held back and on the finish.
        Generation generation = new Generation(engine(), sequence, job.params, sampler);
        first = generation.sampleNext();
        delta = generation.accept(first);
        if (delta.finish() != null && job.endAtFirstToken) {
          if (streamed[i] != null) {
            leases.firstTokenEnded(streamed[i]);
          } else {
            engine().release(sequence);
          }
        } else if (streamed[i] != null) {
          transferId = streamed[i];
          leases.computed(transferId, new FirstToken(first, sampler.state()));
        } else {
          if (engine().draftTokens() > 0) {
            // The MTP layer's KV of the prompt's last position needs the first token; the
            // decode instance cannot compute it (it has no hidden state of the prompt), so it
            // must be in what moves. The draft itself is not sent: the first decode step runs
            // without one.
            engine().draft(List.of(sequence), new int[] {first});
          }
          transferId = leases.lease(job.requestId, sequence);
        }
      } catch (RuntimeException e) {
        LOG.error("request {}: sampling or leasing after prefill failed", job.requestId, e);
        drop(sequence, streamed[i], "sampling after prefill failed");
        complete(job, null, new ServiceException(Failure.INTERNAL,
            "prefill failed: " + e.getMessage()));
        continue;
      }
      if (job.cancelled) {
        // The cancel may have looked for this lease before it existed.
        if (transferId != null) {
          leases.release(transferId);
        }
        complete(job, null, new ServiceException(Failure.CANCELLED, "cancelled"));
        continue;
      }
      Outcome outcome = new Outcome(first, sampler.state(), delta, job.prompt.length,
          sequence.cachedPrefixTokens(), transferId, transferId == null ? 0 : sequence.blockCount(),
          (start - job.queuedNanos) / 1000, prefillMicros);
      complete(job, outcome, null);
    }
    running.set(0);
    return !queue.isEmpty();
  }

  /**
   * Leases the KV of the batch's jobs that asked for it to be streamed, before the step
   * computes it, and tells their requesters; returns the transfer ids (null for the others).
   */
  private String[] leaseStreamed(List<Job> batch, List<Sequence> sequences) {
    String[] transferIds = new String[batch.size()];
    for (int i = 0; i < batch.size(); i++) {
      Job job = batch.get(i);
      if (job.onLeased != null && !job.cancelled) {
        String transferId = leases.leaseWhileComputing(job.requestId, sequences.get(i));
        transferIds[i] = transferId;
        // taken now: the lease may have ended by the time the requester is told of it
        String pullKey = leases.pullKey(transferId);
        job.context.runOnContext(v -> job.onLeased.accept(transferId, pullKey));
      }
    }
    return transferIds;
  }

  /**
   * Lets go of a prefilled sequence whose KV will not be served: freed at once, or, when it was
   * leased as it was computed, once no pull reads it (a pull in progress gets an error).
   */
  private void drop(Sequence sequence, String streamedTransferId, String why) {
    if (streamedTransferId != null) {
      leases.computeFailed(streamedTransferId, why);
    } else {
      engine().release(sequence);
    }
  }

  /** Takes the head of the queue off it and fails it. */
  private void refuse(Job job, ServiceException why) {
    dequeue();
    finish(job);
    complete(job, null, why);
  }

  /** Takes the head of the queue: it no longer counts as waiting. */
  private void dequeue() {
    queue.poll();
    waiting.decrementAndGet();
  }

  /** The job left this scheduler (answered, failed or cancelled). */
  private void finish(Job job) {
    jobs.remove(job.requestId, job);
    inFlightTokens.addAndGet(-job.prompt.length);
  }

  private static void complete(Job job, Outcome outcome, Throwable error) {
    job.context.runOnContext(v -> {
      if (error != null) {
        job.promise.tryFail(error);
      } else {
        job.promise.tryComplete(outcome);
      }
    });
  }
}
