package io.duet.cluster;

import io.duet.cluster.impl.RegistryImpl;
import io.duet.contract.Addresses;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.vertx.core.Future;
import io.vertx.core.Handler;
import io.vertx.core.Vertx;
import java.util.List;
import java.util.Optional;

/**
 * The live view of the cluster: the latest {@link InstanceInfo} of every instance that
 * heartbeats on {@link Addresses#REGISTRY} (see {@link Heartbeat}).
 *
 * <p>An instance is dropped when no heartbeat came from it for
 * {@code cluster.heartbeat-timeout-millis} (measured on this machine's clock, when heartbeats
 * arrive, so clock skew between machines does not matter), and at once when it announces that
 * it {@linkplain InstanceInfo.State#LEFT left} or when the Hazelcast member that announced it
 * leaves the cluster. A heartbeat older than the one held is ignored. An instance that is
 * {@linkplain InstanceInfo.State#DRAINING draining} stays in the view: it is alive and finishing
 * its requests, though it takes no new ones.
 *
 * <p>Every registry also answers requests on {@link Addresses#REGISTRY_VIEW} with its view, so
 * any event-bus client can read it.
 *
 * <p>The view may be read from any thread. Change handlers run on the Vert.x context the
 * registry was created on.
 */
public interface Registry {

  /** What happened to an instance. */
  enum ChangeKind {
    /** First heartbeat seen (or first again after it was removed). */
    ADDED,
    /** A later heartbeat replaced the held one (load, state, ...). */
    UPDATED,
    /** Dropped: it left, heartbeat timeout or cluster member left; see {@link Change#reason()}. */
    REMOVED
  }

  /**
   * A change of the view.
   *
   * @param instance the new info (ADDED, UPDATED) or the last one held (REMOVED)
   * @param reason why it was removed; null otherwise
   */
  record Change(ChangeKind kind, InstanceInfo instance, String reason) {
  }

  /**
   * Starts listening to heartbeats on {@code vertx}'s event bus, with the timeout of
   * {@code config}. Heartbeats published before {@link #ready()} completes may be missed.
   */
  static Registry create(Vertx vertx, DuetConfig config) {
    return new RegistryImpl(vertx, config.get(Settings.CLUSTER_HEARTBEAT_TIMEOUT_MILLIS));
  }

  /** Completes when the heartbeat consumer is registered across the cluster. */
  Future<Void> ready();

  /**
   * Every live entry (an instance, or one rank of a decode instance of several), sorted by
   * instance id, then rank.
   */
  List<InstanceInfo> instances();

  /** The live entries of one role, sorted by instance id, then rank. */
  List<InstanceInfo> instances(Role role);

  /** The latest info of rank {@code rank} of an instance (0 for all but decode), if it is live. */
  Optional<InstanceInfo> get(String instanceId, int rank);

  /** Adds a handler called on every change; exceptions it throws are logged and ignored. */
  Registry onChange(Handler<Change> handler);

  /** Stops listening; the view stays as it was and no more changes are reported. */
  Future<Void> close();
}
