package io.duet.deploy.impl;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

/**
 * Stops the processes of a {@link LaunchRecord}: SIGTERM to each (a service then leaves the
 * cluster cleanly), a grace period, SIGKILL to what still runs; any process a service started
 * goes with it. Only processes that are still the ones recorded (pid and start instant) are
 * signalled.
 */
public final class Stopper {

  /** How long a SIGKILLed process may take to be gone. */
  private static final Duration KILL_WAIT = Duration.ofSeconds(10);

  private final PrintWriter out;

  public Stopper(PrintWriter out) {
    this.out = out;
  }

  /**
   * Stops every recorded process that runs, and prints what became of each.
   *
   * @throws LaunchFailure naming the processes that still run afterwards
   */
  public void stop(LaunchRecord record, Duration grace) throws InterruptedException {
    Map<LaunchRecord.Started, ProcessHandle> running = new LinkedHashMap<>();
    for (LaunchRecord.Started process : record.started()) {
      process.process().ifPresentOrElse(handle -> running.put(process, handle),
          () -> out.println(process.instance() + " (pid " + process.pid() + "): not running"));
    }
    running.values().forEach(handle -> withDescendants(handle).forEach(ProcessHandle::destroy));
    awaitExit(running.values(), grace);
    running.forEach((process, handle) -> {
      if (handle.isAlive()) {
        withDescendants(handle).forEach(ProcessHandle::destroyForcibly);
        out.println(process.instance() + " (pid " + process.pid() + "): killed, still running "
            + grace.toSeconds() + " s after SIGTERM");
      } else {
        out.println(process.instance() + " (pid " + process.pid() + "): stopped");
      }
    });
    awaitExit(running.values(), KILL_WAIT);
    List<String> left = running.entrySet().stream().filter(entry -> entry.getValue().isAlive())
        .map(entry -> entry.getKey().instance() + " (pid " + entry.getKey().pid() + ")")
        .toList();
    out.flush();
    if (!left.isEmpty()) {
      throw new LaunchFailure("still running after SIGKILL: " + String.join(", ", left));
    }
  }

  private static Stream<ProcessHandle> withDescendants(ProcessHandle handle) {
    // descendants first: once the parent is gone they could not be found from it
    return Stream.concat(handle.descendants(), Stream.of(handle));
  }

  private static void awaitExit(Collection<ProcessHandle> handles, Duration timeout)
      throws InterruptedException {
    CompletableFuture<?>[] exits = handles.stream().map(ProcessHandle::onExit)
        .toArray(CompletableFuture[]::new);
    try {
      CompletableFuture.allOf(exits).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException | ExecutionException e) {
      // what still runs is dealt with by the caller
    }
  }
}
