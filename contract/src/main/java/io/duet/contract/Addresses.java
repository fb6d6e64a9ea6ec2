package io.duet.contract;

/**
 * Every event-bus address the services use. Per-instance addresses embed the instance id, so a
 * client that has read the registry can talk to one instance directly.
 */
public final class Addresses {

  /** Published {@link InstanceInfo} heartbeats of every instance. */
  public static final String REGISTRY = "duet.registry";

  /**
   * Request/reply: any message in, the live instances ({@link InstanceInfo} JSON objects) out,
   * as one member that keeps a registry (every proxy does) sees them. For event-bus clients that
   * want the view without listening to heartbeats.
   */
  public static final String REGISTRY_VIEW = "duet.registry.view";

  /**
   * Request/reply for event-bus clients: {@link CompletionRequest} in, {@link CompletionAccepted}
   * out, then the tokens as {@link DecodeEvent}s to the client's stream address. Every proxy
   * serves it and the event bus hands each request to one of them; the message flow is described
   * on {@link CompletionRequest}.
   */
  public static final String COMPLETIONS = "duet.completions";

  private Addresses() {
  }

  /** Request/reply: {@link PrefillRequest} in, {@link PrefillResult} out. */
  public static String prefill(String instanceId) {
    return "duet.prefill." + instanceId;
  }

  /** Fire-and-forget {@link Cancel} of a prefill or of its KV lease. */
  public static String prefillControl(String instanceId) {
    return "duet.prefill." + instanceId + ".control";
  }

  /**
   * Request/reply to rank {@code rank} of a decode instance: {@link DecodeRequest} in,
   * {@link DecodeAccepted} out; tokens follow as a stream.
   */
  public static String decode(String instanceId, int rank) {
    return "duet.decode." + instanceId + "." + rank;
  }

  /** Fire-and-forget {@link StreamCredit} and {@link Cancel} for a decode rank's requests. */
  public static String decodeControl(String instanceId, int rank) {
    return "duet.decode." + instanceId + "." + rank + ".control";
  }

  /**
   * Where the decode events of one proxy's requests arrive: one address per event loop of the
   * proxy (numbered from 0), so that the events of a request reach the event loop that runs it.
   */
  public static String proxyStream(String proxyInstanceId, int eventLoop) {
    return "duet.proxy." + proxyInstanceId + ".stream." + eventLoop;
  }

  /**
   * Where the event-bus clients of one event loop of a proxy send {@link StreamCredit}s
   * (fire-and-forget) and {@link Cancel}s (request/reply) for the completions it took; each
   * client learns it from its {@link CompletionAccepted}.
   */
  public static String proxyControl(String proxyInstanceId, int eventLoop) {
    return "duet.proxy." + proxyInstanceId + ".control." + eventLoop;
  }

  /**
   * A stream address for an event-bus client: where the {@link DecodeEvent}s of its requests
   * arrive (they carry their request id, so one address serves all its requests). Any address
   * that only the client consumes would do; this one keeps clients apart from the services.
   */
  public static String clientStream(String clientId) {
    return "duet.client." + clientId + ".stream";
  }
}
