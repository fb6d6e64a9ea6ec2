package io.duet.contract;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.Set;

/**
 * What every instance announces with each heartbeat: who it is, where to reach it, what it can
 * hold and how busy it is. A decode instance of several data-parallel ranks announces one entry
 * per rank, each with its own status port, capacity and load; {@link #key()} tells them apart.
 *
 * @param dpRank data-parallel rank within its decode instance (0 for others)
 * @param ranks the data-parallel ranks of its instance (1 for prefill and proxy instances)
 * @param kvPort the KV transfer port (prefill instances), 0 otherwise
 * @param fingerprint the KV layout fingerprint; prefill and decode pair only when equal
 * @param chatTemplate the name of the chat template of the model it serves (the proxy renders
 *     chat requests with it unless configured otherwise); empty for a proxy
 * @param capacity sequences it runs at once ({@code max-num-seqs}) or its token budget (prefill)
 * @param state whether it takes new requests, finishes the ones it has, or has gone
 * @param engine the engine architecture that runs its model, e.g. {@code llama2c}, or
 *     {@link #SIMULATED} for the simulated engine, whose text no one must take for a model's;
 *     empty for a proxy
 * @param capabilities what it can do beyond what every version does, e.g.
 *     {@link #FIRST_TOKEN_FROM_PREFILL}: a proxy uses a feature only with instances that
 *     announce it, so that proxies and instances of different builds work together during a
 *     rolling upgrade (an instance of a build without capabilities announces none)
 */
public record InstanceInfo(String instanceId, Role role, int dpRank, int ranks, String host,
    int httpPort,
    int kvPort, String modelName, String fingerprint, String chatTemplate, int capacity, Load load,
    long heartbeatMillis, State state, String engine, Set<String> capabilities) {

  /** {@link #engine()} of an instance that runs the simulated engine. */
  public static final String SIMULATED = "sim";
  /**
   * A decode instance leaves out the first token of a request whose requester streamed it from
   * the prefill result ({@link DecodeRequest#firstTokenSent}); a prefill instance frees the KV
   * of a request its first token ends ({@link PrefillRequest#firstTokenFromPrefill}).
   */
  public static final String FIRST_TOKEN_FROM_PREFILL = "first-token-from-prefill";
  /**
   * A prefill instance serves a request's KV layer by layer while it computes it
   * ({@link PrefillRequest#streamKv}); a decode instance pulls it so
   * ({@link DecodeRequest#kvStreamed}).
   */
  public static final String KV_LAYER_STREAMING = "kv-layer-streaming";
  /** What the prefill and decode instances of this build announce. */
  public static final Set<String> ALL_CAPABILITIES = Set.of(FIRST_TOKEN_FROM_PREFILL,
      KV_LAYER_STREAMING);

  public InstanceInfo {
    capabilities = Set.copyOf(capabilities);
  }

  /**
   * Where an instance is in its life. A stopping instance first announces {@link #DRAINING}, so
   * that proxies stop sending it requests at once while it finishes the ones it has, then
   * {@link #LEFT}, so that registries drop it at once rather than after a heartbeat timeout.
   */
  public enum State {
    /** It takes new requests. */
    SERVING,
    /** It refuses new requests and finishes those it has; it is still alive. */
    DRAINING,
    /** Its last announcement: it has stopped serving. */
    LEFT;

    public String wireName() {
      return name().toLowerCase(java.util.Locale.ROOT);
    }

    public static State fromWire(String name) {
      return valueOf(name.toUpperCase(java.util.Locale.ROOT));
    }
  }

  /** An instance that is {@link State#SERVING}, as every instance announces itself while it runs. */
  public InstanceInfo(String instanceId, Role role, int dpRank, int ranks, String host,
      int httpPort, int kvPort, String modelName, String fingerprint, String chatTemplate,
      int capacity, Load load, long heartbeatMillis) {
    this(instanceId, role, dpRank, ranks, host, httpPort, kvPort, modelName, fingerprint,
        chatTemplate, capacity, load, heartbeatMillis, State.SERVING, "", Set.of());
  }

  /**
   * Current load.
   *
   * @param running sequences being prefilled or decoded
   * @param waiting requests queued behind them
   * @param inFlightTokens prompt tokens in flight (prefill) or tokens held in KV (decode)
   */
  public record Load(int running, int waiting, long inFlightTokens, int kvBlocksUsed,
      int kvBlocksTotal) {

    public JsonObject toJson() {
      return new JsonObject().put("running", running).put("waiting", waiting)
          .put("inFlightTokens", inFlightTokens).put("kvBlocksUsed", kvBlocksUsed)
          .put("kvBlocksTotal", kvBlocksTotal);
    }

    public static Load fromJson(JsonObject json) {
      return new Load(json.getInteger("running"), json.getInteger("waiting"),
          json.getLong("inFlightTokens"), json.getInteger("kvBlocksUsed"),
          json.getInteger("kvBlocksTotal"));
    }
  }

  /** Unique among the registry's entries: the instance id and, for a decode rank, the rank. */
  public String key() {
    return key(instanceId, dpRank);
  }

  /** The {@link #key()} of rank {@code rank} of instance {@code instanceId}. */
  public static String key(String instanceId, int rank) {
    return instanceId + "#" + rank;
  }

  public InstanceInfo withLoad(Load value, long now) {
    return new InstanceInfo(instanceId, role, dpRank, ranks, host, httpPort, kvPort, modelName,
        fingerprint, chatTemplate, capacity, value, now, state, engine, capabilities);
  }

  public InstanceInfo withState(State value) {
    return new InstanceInfo(instanceId, role, dpRank, ranks, host, httpPort, kvPort, modelName,
        fingerprint, chatTemplate, capacity, load, heartbeatMillis, value, engine, capabilities);
  }

  public InstanceInfo withEngine(String value) {
    return new InstanceInfo(instanceId, role, dpRank, ranks, host, httpPort, kvPort, modelName,
        fingerprint, chatTemplate, capacity, load, heartbeatMillis, state, value, capabilities);
  }

  public InstanceInfo withCapabilities(Set<String> value) {
    return new InstanceInfo(instanceId, role, dpRank, ranks, host, httpPort, kvPort, modelName,
        fingerprint, chatTemplate, capacity, load, heartbeatMillis, state, engine, value);
  }

  /** Whether it announces every one of {@code wanted}. */
  public boolean can(Set<String> wanted) {
    return capabilities.containsAll(wanted);
  }

  /** Whether it runs the simulated engine. */
  public boolean isSimulated() {
    return SIMULATED.equals(engine);
  }

  /** Whether it takes new requests. */
  public boolean isServing() {
    return state == State.SERVING;
  }

  public JsonObject toJson() {
    return Messages.envelope().put("instanceId", instanceId).put("role", role.wireName())
        .put("dpRank", dpRank).put("ranks", ranks).put("host", host).put("httpPort", httpPort).put("kvPort", kvPort)
        .put("modelName", modelName).put("fingerprint", fingerprint)
        .put("chatTemplate", chatTemplate).put("capacity", capacity)
        .put("load", load.toJson()).put("heartbeatMillis", heartbeatMillis)
        .put("state", state.wireName()).put("engine", engine)
        .put("capabilities", new JsonArray(capabilities.stream().sorted().toList()));
  }

  public static InstanceInfo fromJson(JsonObject json) {
    Messages.checked(json, "instance info");
    return new InstanceInfo(json.getString("instanceId"), Role.fromWire(json.getString("role")),
        json.getInteger("dpRank"), json.getInteger("ranks", 1), json.getString("host"),
        json.getInteger("httpPort"), json.getInteger("kvPort"), json.getString("modelName"),
        json.getString("fingerprint"), json.getString("chatTemplate", ""),
        json.getInteger("capacity"), Load.fromJson(json.getJsonObject("load")),
        json.getLong("heartbeatMillis"),
        // a peer of a build without states announces only while it serves
        State.fromWire(json.getString("state", State.SERVING.wireName())),
        json.getString("engine", ""), capabilities(json.getJsonArray("capabilities")));
  }

  private static Set<String> capabilities(JsonArray names) {
    Set<String> set = new java.util.HashSet<>();
    if (names != null) {
      for (int i = 0; i < names.size(); i++) {
        set.add(names.getString(i));
      }
    }
    return set;
  }
}
