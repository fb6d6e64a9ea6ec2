package io.duet.proxy.routing;

import io.duet.contract.InstanceInfo;

/**
 * Where a decode request goes: one data-parallel rank of a decode instance. It is the unit the
 * proxy counts its in-flight requests on and excludes when it refused a request. A decode
 * instance announces each of its ranks as a registry entry of its own, and each entry is a
 * target.
 */
public record DecodeTarget(String instanceId, int dpRank) {

  /** The target a decode instance's registry entry announces. */
  public static DecodeTarget of(InstanceInfo entry) {
    return new DecodeTarget(entry.instanceId(), entry.dpRank());
  }
}
