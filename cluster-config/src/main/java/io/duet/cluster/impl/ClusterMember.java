package io.duet.cluster.impl;

import com.hazelcast.cluster.MembershipEvent;
import com.hazelcast.cluster.MembershipListener;
import com.hazelcast.core.HazelcastInstance;
import io.vertx.core.Vertx;
import io.vertx.core.internal.VertxInternal;
import io.vertx.spi.cluster.hazelcast.HazelcastClusterManager;
import java.util.Optional;
import java.util.UUID;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Hazelcast membership of a clustered Vert.x, when it is one. Vert.x keeps the cluster
 * manager's single {@code NodeListener} slot for itself, so member departures are observed
 * with a Hazelcast membership listener instead.
 */
public final class ClusterMember {

  private static final Logger log = LoggerFactory.getLogger(ClusterMember.class);

  private ClusterMember() {
  }

  /** The Hazelcast instance behind {@code vertx}, or empty when it is not clustered on Hazelcast. */
  public static Optional<HazelcastInstance> hazelcast(Vertx vertx) {
    if (vertx instanceof VertxInternal internal
        && internal.clusterManager() instanceof HazelcastClusterManager manager) {
      try {
        return Optional.ofNullable(manager.getHazelcastInstance());
      } catch (RuntimeException e) {
        return Optional.empty();
      }
    }
    return Optional.empty();
  }

  /** The UUID of this Hazelcast member, or empty when not clustered on Hazelcast. */
  public static Optional<String> localMemberId(Vertx vertx) {
    return hazelcast(vertx).flatMap(hz -> {
      try {
        return Optional.of(hz.getCluster().getLocalMember().getUuid().toString());
      } catch (RuntimeException e) {
        return Optional.empty();
      }
    });
  }

  /**
   * Calls {@code left} with the UUID of every member that leaves the cluster (on a Hazelcast
   * thread). Returns a handle that removes the listener, or empty when not clustered.
   */
  public static Optional<Runnable> onMemberLeft(Vertx vertx, Consumer<String> left) {
    return hazelcast(vertx).map(hz -> {
      UUID id = hz.getCluster().addMembershipListener(new MembershipListener() {
        @Override
        public void memberAdded(MembershipEvent event) {
        }

        @Override
        public void memberRemoved(MembershipEvent event) {
          left.accept(event.getMember().getUuid().toString());
        }
      });
      return () -> {
        try {
          hz.getCluster().removeMembershipListener(id);
        } catch (RuntimeException e) {
          log.debug("Membership listener not removed (Hazelcast already shut down)", e);
        }
      };
    });
  }
}
