package io.duet.proxy.cluster;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.vertx.core.eventbus.EventBus;

/**
 * Frees the KV lease a prefill instance holds for a request that no decode instance will pull:
 * a {@link Cancel} naming the lease's transfer id, sent to the prefill instance. Without it the
 * blocks would stay held until the lease expires.
 */
final class KvLeases {

  private final EventBus eventBus;

  KvLeases(EventBus eventBus) {
    this.eventBus = eventBus;
  }

  /**
   * Frees the lease of {@code job}, if it has one; harmless when the lease already ended
   * (pulled, expired or freed before).
   */
  void release(ClusterJob job) {
    if (job.prefilled != null && job.prefilled.kv() != null) {
      eventBus.send(Addresses.prefillControl(job.prefill.instanceId()),
          new Cancel(job.requestId(), job.prefilled.kv().transferId(), "request ended").toJson());
    }
  }
}
