package io.duet.proxy;

import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.vertx.core.Context;
import io.vertx.core.Handler;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.streams.ReadStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

/**
 * A scripted {@link CompletionBackend} for testing the HTTP layer: each job plays a {@link Script}
 * of decode events on the caller's context, honours pause/resume, and records jobs, the threads
 * they started on, pauses and cancellations. Safe to share between event loops.
 */
final class StubBackend implements CompletionBackend {

  /** What a job does: emit {@code events} {@code delayMs} apart, then fail, hang or end. */
  record Script(List<DecodeEvent> events, long delayMs, CompletionException failure,
      boolean hang) {

    Script withDelay(long value) {
      return new Script(events, value, failure, hang);
    }

    /** Fails through the exception handler after the events. */
    Script thenFail(Failure f, String message) {
      return new Script(events, delayMs, new CompletionException(f, message), false);
    }

    /** Never ends after the events (until cancelled). */
    Script thenHang() {
      return new Script(events, delayMs, null, true);
    }
  }

  static final String MODEL = "stub-model";

  private final Vertx vertx;
  volatile List<String> models = List.of(MODEL);
  volatile Function<CompletionJob, Script> script = job -> tokens(job, 5, "stop", "Hello",
      " world");
  final List<CompletionJob> jobs = new CopyOnWriteArrayList<>();
  final Set<String> threads = ConcurrentHashMap.newKeySet();
  final Promise<CompletionJob> started = Promise.promise();
  final Promise<String> cancelled = Promise.promise();
  final AtomicInteger cancels = new AtomicInteger();
  final Promise<Void> paused = Promise.promise();
  final AtomicInteger resumes = new AtomicInteger();

  StubBackend(Vertx vertx) {
    this.vertx = vertx;
  }

  /** One event per text piece (one token each), the last with {@code finishReason}. */
  static Script tokens(CompletionJob job, int promptTokens, String finishReason,
      String... pieces) {
    List<DecodeEvent> events = new ArrayList<>();
    for (int i = 0; i < pieces.length; i++) {
      events.add(new DecodeEvent(job.requestId(), i, pieces[i], 1, i + 1, promptTokens,
          i == pieces.length - 1 ? finishReason : null, null, null));
    }
    return new Script(events, 0, null, false);
  }

  /** An event that reports a decode failure. */
  static DecodeEvent failureEvent(CompletionJob job, int sequence, int completionTokens,
      Failure failure, String error) {
    return new DecodeEvent(job.requestId(), sequence, "", 0, completionTokens, 5, null,
        failure.name(), error);
  }

  /** When set, the backend refuses new jobs as OVERLOADED with this message. */
  volatile String overloaded;

  @Override
  public void checkCapacity(String model) {
    if (overloaded != null) {
      throw new CompletionException(Failure.OVERLOADED, overloaded);
    }
  }

  @Override
  public CompletionStream start(CompletionJob job) {
    jobs.add(job);
    threads.add(Thread.currentThread().getName());
    started.tryComplete(job);
    return new StubStream(job, script.apply(job), vertx.getOrCreateContext());
  }

  @Override
  public List<String> models() {
    return models;
  }

  /** The models the stub expects to serve while it serves none of them. */
  volatile List<String> expected = List.of();

  @Override
  public boolean expects(String model) {
    return expected.contains(model);
  }

  /** What the stub's model announces as its chat template; none unless a test sets one. */
  volatile String chatTemplate;

  @Override
  public Optional<String> chatTemplate(String model) {
    return Optional.ofNullable(chatTemplate);
  }

  private final class StubStream implements CompletionStream {

    private final CompletionJob job;
    private final Script script;
    private final Context context;
    private Handler<DecodeEvent> handler;
    private Handler<Throwable> exceptionHandler;
    private Handler<Void> endHandler;
    private boolean isPaused;
    private boolean scheduled;
    private boolean finished;
    private boolean isCancelled;
    private int next;

    StubStream(CompletionJob job, Script script, Context context) {
      this.job = job;
      this.script = script;
      this.context = context;
    }

    @Override
    public ReadStream<DecodeEvent> handler(Handler<DecodeEvent> value) {
      handler = value;
      schedule();
      return this;
    }

    @Override
    public ReadStream<DecodeEvent> exceptionHandler(Handler<Throwable> value) {
      exceptionHandler = value;
      return this;
    }

    @Override
    public ReadStream<DecodeEvent> endHandler(Handler<Void> value) {
      endHandler = value;
      return this;
    }

    @Override
    public ReadStream<DecodeEvent> pause() {
      isPaused = true;
      paused.tryComplete();
      return this;
    }

    @Override
    public ReadStream<DecodeEvent> resume() {
      isPaused = false;
      resumes.incrementAndGet();
      schedule();
      return this;
    }

    @Override
    public ReadStream<DecodeEvent> fetch(long amount) {
      return resume();
    }

    @Override
    public void cancel() {
      isCancelled = true;
      cancels.incrementAndGet();
      cancelled.tryComplete(job.requestId());
    }

    private void schedule() {
      if (scheduled || isPaused || isCancelled || finished || handler == null) {
        return;
      }
      scheduled = true;
      if (script.delayMs() > 0) {
        context.owner().setTimer(script.delayMs(), id -> emit());
      } else {
        context.runOnContext(v -> emit());
      }
    }

    private void emit() {
      scheduled = false;
      if (isPaused || isCancelled || finished) {
        return;
      }
      if (next < script.events().size()) {
        DecodeEvent event = script.events().get(next++);
        handler.handle(event);
        if (event.isLast()) {
          finished = true;
          if (endHandler != null) {
            endHandler.handle(null);
          }
        } else {
          schedule();
        }
      } else if (script.failure() != null) {
        finished = true;
        exceptionHandler.handle(script.failure());
      } else if (!script.hang()) {
        finished = true;
        if (endHandler != null) {
          endHandler.handle(null);
        }
      }
    }
  }
}
