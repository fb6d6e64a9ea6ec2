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

  /** Request/reply: {@link DecodeRequest} in, {@link DecodeAccepted} out; tokens follow as a stream. */
  public static String decode(String instanceId) {
    return "duet.decode." + instanceId;
  }

  /** Fire-and-forget {@link StreamCredit} and {@link Cancel} for running decodes. */
  public static String decodeControl(String instanceId) {
    return "duet.decode." + instanceId + ".control";
  }

  /**
   * Where the decode events of one proxy's requests arrive: one address per event loop of the
   * proxy (numbered from 0), so that the events of a request reach the event loop that runs it.
   */
  public static String proxyStream(String proxyInstanceId, int eventLoop) {
    return "duet.proxy." + proxyInstanceId + ".stream." + eventLoop;
  }
}
