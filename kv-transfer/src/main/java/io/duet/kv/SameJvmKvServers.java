package io.duet.kv;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The lease tables of this JVM's KV servers, by the endpoint each listens on (and its prefill
 * instance announces in its KV handles), so that a decode rank in the same JVM as the prefill
 * instance whose KV it pulls takes the KV from memory instead of over a socket. A server listed
 * here is one whose port no other process can hold, so an endpoint names at most one of them.
 */
final class SameJvmKvServers {

  private static final Map<String, LeaseTable> SERVERS = new ConcurrentHashMap<>();

  private SameJvmKvServers() {
  }

  /** Lists the server of {@code leases} at {@code host:port}, in place of one closed there. */
  static void add(String host, int port, LeaseTable leases) {
    SERVERS.put(endpoint(host, port), leases);
  }

  static void remove(String host, int port, LeaseTable leases) {
    SERVERS.remove(endpoint(host, port), leases);
  }

  /** The lease table of the server of this JVM at {@code host:port}; null when there is none. */
  static LeaseTable find(String host, int port) {
    return SERVERS.get(endpoint(host, port));
  }

  private static String endpoint(String host, int port) {
    return host + ":" + port;
  }
}
