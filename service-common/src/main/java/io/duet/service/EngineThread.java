package io.duet.service;

import io.duet.engine.Engine;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one thread that drives an engine: the forward pass is long, blocking work that must stay
 * off the event loops. Commands from event loops arrive through a queue; {@link #iteration}
 * runs one scheduling round (a prefill batch or a decode step) and says whether work remains,
 * so the thread sleeps on the queue only when idle.
 */
public abstract class EngineThread implements AutoCloseable {

  private static final Logger LOG = LoggerFactory.getLogger(EngineThread.class);

  private final BlockingQueue<Runnable> commands = new LinkedBlockingQueue<>();
  private final Engine engine;
  private final Thread thread;
  private volatile boolean closed;

  protected EngineThread(String name, Engine engine) {
    this.engine = engine;
    this.thread = new Thread(this::loop, name);
    this.thread.setDaemon(true);
  }

  public void start() {
    thread.start();
  }

  /** Runs {@code command} on the engine thread before its next scheduling round. */
  public void submit(Runnable command) {
    commands.add(command);
  }

  /**
   * One scheduling round on the engine thread.
   *
   * @return true when more work is ready right away, false to wait for the next command
   */
  protected abstract boolean iteration();

  /** The engine this thread drives. */
  protected final Engine engine() {
    return engine;
  }

  /**
   * The next command; when none is waiting, the engine's compute threads are told to stop
   * spinning for the next job ({@link Engine#idle}) before the wait. Null after 100 ms without.
   */
  private Runnable awaitCommand() throws InterruptedException {
    Runnable command = commands.poll();
    if (command != null) {
      return command;
    }
    engine.idle();
    return commands.poll(100, TimeUnit.MILLISECONDS);
  }

  private void loop() {
    boolean busy = false;
    while (!closed) {
      try {
        Runnable command = busy ? commands.poll() : awaitCommand();
        while (command != null) {
          command.run();
          command = commands.poll();
        }
        busy = iteration();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return;
      } catch (RuntimeException | Error e) {
        // A bug in one round must not take the instance down silently.
        LOG.error("engine thread round failed", e);
        busy = false;
      }
    }
  }

  @Override
  public void close() {
    closed = true;
    thread.interrupt();
    try {
      thread.join(TimeUnit.SECONDS.toMillis(10));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
