package io.duet.proxy;

import io.duet.cluster.Settings;
import io.vertx.core.json.JsonObject;
import java.util.Objects;

/**
 * Options of the proxy's front ends ({@link ProxyVerticle}): the OpenAI-compatible HTTP API
 * ({@link OpenAiApi}) and the completions for event-bus clients
 * ({@link io.duet.contract.Addresses#COMPLETIONS}). The defaults and the allowed values are those
 * of the settings declared in {@link Settings}.
 */
public class ProxyOptions {

  /** {@link Settings#PROXY_HOST}: loopback only. */
  public static final String DEFAULT_HOST = Settings.PROXY_HOST.defaultValue();
  /** {@link Settings#PROXY_PORT}: the port of the reference deployment's proxy. */
  public static final int DEFAULT_PORT = Settings.PROXY_PORT.defaultValue();
  /** {@link Settings#PROXY_HTTP_INSTANCES}: one HTTP server. */
  public static final int DEFAULT_INSTANCES = Settings.PROXY_HTTP_INSTANCES.defaultValue();
  /** {@link Settings#API_KEY}: none, {@code /v1/*} is open. */
  public static final String DEFAULT_API_KEY = Settings.API_KEY.defaultValue().orElse(null);
  /** {@link Settings#MODEL_CHAT_TEMPLATE}: none, the model's own. */
  public static final String DEFAULT_CHAT_TEMPLATE =
      Settings.MODEL_CHAT_TEMPLATE.defaultValue().orElse(null);
  /** {@link Settings#PROXY_MAX_BODY_BYTES}: larger request bodies are refused with 413. */
  public static final int DEFAULT_MAX_BODY_BYTES = Settings.PROXY_MAX_BODY_BYTES.defaultValue();
  /** {@link Settings#PROXY_COMPLETION_MAX_TOKENS}: OpenAI's default. */
  public static final int DEFAULT_COMPLETION_MAX_TOKENS =
      Settings.PROXY_COMPLETION_MAX_TOKENS.defaultValue();
  /**
   * {@link Settings#PROXY_CHAT_MAX_TOKENS}: {@code /v1/chat/completions} has no default limit in
   * OpenAI's API; this cap stands in for it (the model's context length cuts earlier, with
   * {@code finish_reason: "length"}).
   */
  public static final int DEFAULT_CHAT_MAX_TOKENS = Settings.PROXY_CHAT_MAX_TOKENS.defaultValue();
  /** No instance id: each {@link ProxyVerticle} makes up one of its own. */
  public static final String DEFAULT_INSTANCE_ID = null;
  /** {@link Settings#PROXY_EVENTBUS_STALL_TIMEOUT_SECONDS}. */
  public static final long DEFAULT_EVENT_BUS_STALL_TIMEOUT_MILLIS =
      Settings.PROXY_EVENTBUS_STALL_TIMEOUT_SECONDS.defaultValue() * 1000L;
  /**
   * No drain: an undeployed proxy closes its connections at once, as a test or an embedding
   * application expects. A proxy service drains for
   * {@link Settings#INSTANCE_DRAIN_TIMEOUT_SECONDS}.
   */
  public static final long DEFAULT_DRAIN_TIMEOUT_MILLIS = 0;
  /** {@link Settings#PROXY_MAX_CONNECTIONS}. */
  public static final int DEFAULT_MAX_CONNECTIONS = Settings.PROXY_MAX_CONNECTIONS.defaultValue();
  /** {@link Settings#PROXY_IDLE_TIMEOUT_SECONDS}. */
  public static final int DEFAULT_IDLE_TIMEOUT_SECONDS =
      Settings.PROXY_IDLE_TIMEOUT_SECONDS.defaultValue();
  /** {@link Settings#PROXY_BODY_TIMEOUT_SECONDS}. */
  public static final long DEFAULT_BODY_TIMEOUT_MILLIS =
      Settings.PROXY_BODY_TIMEOUT_SECONDS.defaultValue() * 1000L;
  /** {@link Settings#PROXY_H2C_UPGRADE}: HTTP/1.1 only. */
  public static final boolean DEFAULT_H2C_UPGRADE = Settings.PROXY_H2C_UPGRADE.defaultValue();

  private String host = DEFAULT_HOST;
  private int port = DEFAULT_PORT;
  private int instances = DEFAULT_INSTANCES;
  private String apiKey = DEFAULT_API_KEY;
  private String chatTemplate = DEFAULT_CHAT_TEMPLATE;
  private int maxBodyBytes = DEFAULT_MAX_BODY_BYTES;
  private int completionMaxTokens = DEFAULT_COMPLETION_MAX_TOKENS;
  private int chatMaxTokens = DEFAULT_CHAT_MAX_TOKENS;
  private String instanceId = DEFAULT_INSTANCE_ID;
  private long eventBusStallTimeoutMillis = DEFAULT_EVENT_BUS_STALL_TIMEOUT_MILLIS;
  private long drainTimeoutMillis = DEFAULT_DRAIN_TIMEOUT_MILLIS;
  private int maxConnections = DEFAULT_MAX_CONNECTIONS;
  private int idleTimeoutSeconds = DEFAULT_IDLE_TIMEOUT_SECONDS;
  private long bodyTimeoutMillis = DEFAULT_BODY_TIMEOUT_MILLIS;
  private boolean h2cUpgrade = DEFAULT_H2C_UPGRADE;

  public ProxyOptions() {
  }

  public ProxyOptions(ProxyOptions other) {
    host = other.host;
    port = other.port;
    instances = other.instances;
    apiKey = other.apiKey;
    chatTemplate = other.chatTemplate;
    maxBodyBytes = other.maxBodyBytes;
    completionMaxTokens = other.completionMaxTokens;
    chatMaxTokens = other.chatMaxTokens;
    instanceId = other.instanceId;
    eventBusStallTimeoutMillis = other.eventBusStallTimeoutMillis;
    drainTimeoutMillis = other.drainTimeoutMillis;
    maxConnections = other.maxConnections;
    idleTimeoutSeconds = other.idleTimeoutSeconds;
    bodyTimeoutMillis = other.bodyTimeoutMillis;
    h2cUpgrade = other.h2cUpgrade;
  }

  /** Reads the fields {@link #toJson()} writes; absent fields keep their defaults. */
  public ProxyOptions(JsonObject json) {
    setHost(json.getString("host", DEFAULT_HOST));
    setPort(json.getInteger("port", DEFAULT_PORT));
    setInstances(json.getInteger("instances", DEFAULT_INSTANCES));
    setApiKey(json.getString("apiKey", DEFAULT_API_KEY));
    setChatTemplate(json.getString("chatTemplate", DEFAULT_CHAT_TEMPLATE));
    setMaxBodyBytes(json.getInteger("maxBodyBytes", DEFAULT_MAX_BODY_BYTES));
    setCompletionMaxTokens(json.getInteger("completionMaxTokens", DEFAULT_COMPLETION_MAX_TOKENS));
    setChatMaxTokens(json.getInteger("chatMaxTokens", DEFAULT_CHAT_MAX_TOKENS));
    setInstanceId(json.getString("instanceId", DEFAULT_INSTANCE_ID));
    setEventBusStallTimeoutMillis(json.getLong("eventBusStallTimeoutMillis",
        DEFAULT_EVENT_BUS_STALL_TIMEOUT_MILLIS));
    setDrainTimeoutMillis(json.getLong("drainTimeoutMillis", DEFAULT_DRAIN_TIMEOUT_MILLIS));
    setMaxConnections(json.getInteger("maxConnections", DEFAULT_MAX_CONNECTIONS));
    setIdleTimeoutSeconds(json.getInteger("idleTimeoutSeconds", DEFAULT_IDLE_TIMEOUT_SECONDS));
    setBodyTimeoutMillis(json.getLong("bodyTimeoutMillis", DEFAULT_BODY_TIMEOUT_MILLIS));
    setH2cUpgrade(json.getBoolean("h2cUpgrade", DEFAULT_H2C_UPGRADE));
  }

  public JsonObject toJson() {
    return new JsonObject().put("host", host).put("port", port).put("instances", instances)
        .put("apiKey", apiKey).put("chatTemplate", chatTemplate).put("maxBodyBytes", maxBodyBytes)
        .put("completionMaxTokens", completionMaxTokens).put("chatMaxTokens", chatMaxTokens)
        .put("instanceId", instanceId)
        .put("eventBusStallTimeoutMillis", eventBusStallTimeoutMillis)
        .put("drainTimeoutMillis", drainTimeoutMillis).put("maxConnections", maxConnections)
        .put("idleTimeoutSeconds", idleTimeoutSeconds).put("bodyTimeoutMillis", bodyTimeoutMillis)
        .put("h2cUpgrade", h2cUpgrade);
  }

  public String getHost() {
    return host;
  }

  public ProxyOptions setHost(String host) {
    this.host = Objects.requireNonNull(host, "host");
    return this;
  }

  public int getPort() {
    return port;
  }

  /** The port to listen on; 0 picks a free one (see {@link ProxyVerticle#actualPort()}). */
  public ProxyOptions setPort(int port) {
    this.port = Settings.PROXY_PORT.requireValid(port);
    return this;
  }

  public int getInstances() {
    return instances;
  }

  /**
   * HTTP servers sharing the port, each on an event loop of its own while there are no more of
   * them than Vert.x has event loops ({@link Settings#INSTANCE_EVENT_LOOPS}). Vert.x hands each
   * new connection to the next server in turn, so connections and their requests spread over the
   * event loops.
   */
  public ProxyOptions setInstances(int instances) {
    if (instances < 1) {
      throw new IllegalArgumentException("instances must be at least 1: " + instances);
    }
    this.instances = instances;
    return this;
  }

  public String getApiKey() {
    return apiKey;
  }

  /**
   * When set (non-empty), every {@code /v1/*} request must carry {@code Authorization: Bearer
   * <key>}; {@code /health} and {@code /metrics} stay open.
   */
  public ProxyOptions setApiKey(String apiKey) {
    this.apiKey = apiKey == null || apiKey.isEmpty() ? null : apiKey;
    return this;
  }

  public String getChatTemplate() {
    return chatTemplate;
  }

  /**
   * The {@link ChatTemplate} name that renders chat messages into a prompt; null (the default)
   * for the one each model's instances announce.
   */
  public ProxyOptions setChatTemplate(String chatTemplate) {
    if (chatTemplate != null) {
      ChatTemplate.forName(chatTemplate);
    }
    this.chatTemplate = chatTemplate;
    return this;
  }

  public int getMaxBodyBytes() {
    return maxBodyBytes;
  }

  public ProxyOptions setMaxBodyBytes(int maxBodyBytes) {
    this.maxBodyBytes = Settings.PROXY_MAX_BODY_BYTES.requireValid(maxBodyBytes);
    return this;
  }

  public int getCompletionMaxTokens() {
    return completionMaxTokens;
  }

  /** {@code max_tokens} of a {@code /v1/completions} request that gives none. */
  public ProxyOptions setCompletionMaxTokens(int completionMaxTokens) {
    this.completionMaxTokens =
        Settings.PROXY_COMPLETION_MAX_TOKENS.requireValid(completionMaxTokens);
    return this;
  }

  public int getChatMaxTokens() {
    return chatMaxTokens;
  }

  /** {@code max_tokens} of a {@code /v1/chat/completions} request that gives none. */
  public ProxyOptions setChatMaxTokens(int chatMaxTokens) {
    this.chatMaxTokens = Settings.PROXY_CHAT_MAX_TOKENS.requireValid(chatMaxTokens);
    return this;
  }

  public String getInstanceId() {
    return instanceId;
  }

  /**
   * The proxy's instance id, which names its event-bus control addresses
   * ({@link io.duet.contract.Addresses#proxyControl}); unique in the cluster.
   */
  public ProxyOptions setInstanceId(String instanceId) {
    this.instanceId = instanceId;
    return this;
  }

  public long getEventBusStallTimeoutMillis() {
    return eventBusStallTimeoutMillis;
  }

  /**
   * How long an event-bus client that has used up its credits may grant none before its request
   * is cancelled.
   */
  public ProxyOptions setEventBusStallTimeoutMillis(long eventBusStallTimeoutMillis) {
    if (eventBusStallTimeoutMillis <= 0) {
      throw new IllegalArgumentException("eventBusStallTimeoutMillis must be positive, was "
          + eventBusStallTimeoutMillis);
    }
    this.eventBusStallTimeoutMillis = eventBusStallTimeoutMillis;
    return this;
  }

  public long getDrainTimeoutMillis() {
    return drainTimeoutMillis;
  }

  /**
   * How long an undeployed proxy lets its open streams run to their end: it closes its listening
   * socket and takes no new event-bus completion at once, then closes each connection when its
   * response has ended, and cuts what still runs when this time is up. 0: it closes at once.
   */
  public ProxyOptions setDrainTimeoutMillis(long drainTimeoutMillis) {
    if (drainTimeoutMillis < 0) {
      throw new IllegalArgumentException("drainTimeoutMillis must not be negative, was "
          + drainTimeoutMillis);
    }
    this.drainTimeoutMillis = drainTimeoutMillis;
    return this;
  }

  public int getMaxConnections() {
    return maxConnections;
  }

  /**
   * HTTP connections the proxy holds at once, over all its HTTP servers; one more is closed as
   * soon as it is accepted.
   */
  public ProxyOptions setMaxConnections(int maxConnections) {
    this.maxConnections = Settings.PROXY_MAX_CONNECTIONS.requireValid(maxConnections);
    return this;
  }

  public int getIdleTimeoutSeconds() {
    return idleTimeoutSeconds;
  }

  /** An HTTP connection that neither reads nor writes this long is closed. */
  public ProxyOptions setIdleTimeoutSeconds(int idleTimeoutSeconds) {
    this.idleTimeoutSeconds = Settings.PROXY_IDLE_TIMEOUT_SECONDS.requireValid(
        idleTimeoutSeconds);
    return this;
  }

  public long getBodyTimeoutMillis() {
    return bodyTimeoutMillis;
  }

  /**
   * How long a request's body may take to arrive after its headers; past it the request is
   * answered 408 and its connection closed.
   */
  public ProxyOptions setBodyTimeoutMillis(long bodyTimeoutMillis) {
    if (bodyTimeoutMillis <= 0) {
      throw new IllegalArgumentException("bodyTimeoutMillis must be positive, was "
          + bodyTimeoutMillis);
    }
    this.bodyTimeoutMillis = bodyTimeoutMillis;
    return this;
  }

  public boolean isH2cUpgrade() {
    return h2cUpgrade;
  }

  /** Whether HTTP/2 over cleartext is accepted (off: HTTP/1.1 only). */
  public ProxyOptions setH2cUpgrade(boolean h2cUpgrade) {
    this.h2cUpgrade = h2cUpgrade;
    return this;
  }
}
