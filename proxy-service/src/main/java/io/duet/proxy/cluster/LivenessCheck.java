package io.duet.proxy.cluster;

import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.proxy.routing.DecodeTarget;
import io.vertx.core.Vertx;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;

/**
 * Reports, as UNAVAILABLE, the requests whose instance left the registry: the decode target once
 * a request has one, else its prefill instance. Without it such a request would wait for its
 * deadline (minutes) instead of ending within a heartbeat timeout. An instance that is draining
 * is still in the registry: its requests go on. Runs periodically on the context of the backend
 * whose requests it checks.
 *
 * <p>A decode target that sent the request an event within {@link #EVIDENTLY_ALIVE_MILLIS} is
 * alive whatever the registry says (its heartbeats can lapse on a starved machine while it
 * streams): its requests are failed only once it has been silent that long as well. A target
 * that died sends nothing, and the registry drops a frozen one only after its heartbeat
 * timeout, longer than this: neither is reported later than before.
 */
final class LivenessCheck {

  /** With the default heartbeat timeout, a request on a silent instance ends within 2.5 s. */
  static final long PERIOD_MILLIS = 250;
  /** How recent an event from a decode target shows it alive. */
  static final long EVIDENTLY_ALIVE_MILLIS = 1_000;

  private final Vertx vertx;
  private final Supplier<List<InstanceInfo>> registry;
  private final Supplier<Collection<ClusterJob>> jobs;
  private final ClusterJob.Failer decodeLost;
  private final ClusterJob.Failer prefillLost;
  private final long evidentlyAliveMillis;
  private long timer = -1;

  /**
   * @param jobs the requests running, read on the backend's context
   * @param decodeLost told of a request whose decode target left
   * @param prefillLost told of a request whose prefill instance left before it answered
   */
  LivenessCheck(Vertx vertx, Supplier<List<InstanceInfo>> registry,
      Supplier<Collection<ClusterJob>> jobs, ClusterJob.Failer decodeLost,
      ClusterJob.Failer prefillLost) {
    this(vertx, registry, jobs, decodeLost, prefillLost, EVIDENTLY_ALIVE_MILLIS);
  }

  /** @param evidentlyAliveMillis how recent an event from a decode target shows it alive */
  LivenessCheck(Vertx vertx, Supplier<List<InstanceInfo>> registry,
      Supplier<Collection<ClusterJob>> jobs, ClusterJob.Failer decodeLost,
      ClusterJob.Failer prefillLost, long evidentlyAliveMillis) {
    this.evidentlyAliveMillis = evidentlyAliveMillis;
    this.vertx = vertx;
    this.registry = registry;
    this.jobs = jobs;
    this.decodeLost = decodeLost;
    this.prefillLost = prefillLost;
  }

  /** Starts checking every {@link #PERIOD_MILLIS} on the caller's context. */
  void start() {
    timer = vertx.setPeriodic(PERIOD_MILLIS, t -> run());
  }

  void stop() {
    vertx.cancelTimer(timer);
  }

  /** One check. */
  void run() {
    Collection<ClusterJob> running = jobs.get();
    if (running.isEmpty()) {
      return;
    }
    Set<String> liveInstances = new HashSet<>();
    Set<DecodeTarget> liveTargets = new HashSet<>();
    for (InstanceInfo entry : registry.get()) {
      liveInstances.add(entry.instanceId());
      liveTargets.add(DecodeTarget.of(entry));
    }
    for (ClusterJob job : new ArrayList<>(running)) {
      if (job.decode != null && !liveTargets.contains(job.decode)
          && !job.heardFromDecodeWithin(evidentlyAliveMillis)) {
        decodeLost.fail(job, Failure.UNAVAILABLE,
            "the decode instance left the cluster mid-request");
      } else if ((job.decode == null || job.streamKv && job.prefilled == null)
          && job.prefill != null
          && !liveInstances.contains(job.prefill.instanceId())) {
        prefillLost.fail(job, Failure.UNAVAILABLE,
            "the prefill instance left the cluster mid-request");
      }
    }
  }
}
