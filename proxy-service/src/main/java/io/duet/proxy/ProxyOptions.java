package io.duet.proxy;

import io.vertx.core.json.JsonObject;
import java.util.Objects;

/**
 * Options of the proxy's front ends ({@link ProxyVerticle}): the OpenAI-compatible HTTP API
 * ({@link OpenAiApi}) and the completions for event-bus clients
 * ({@link io.duet.contract.Addresses#COMPLETIONS}).
 */
public class ProxyOptions {

  /** Listen on every interface. */
  public static final String DEFAULT_HOST = "0.0.0.0";
  /** The port of the reference deployment's proxy. */
  public static final int DEFAULT_PORT = 7000;
  /** One HTTP server per core, as Vert.x sizes its event-loop pool by the cores. */
  public static final int DEFAULT_INSTANCES = Runtime.getRuntime().availableProcessors();
  /** No API key: {@code /v1/*} is open. */
  public static final String DEFAULT_API_KEY = null;
  /** The llama2.c chat format ({@code [INST] ... [/INST]}); see {@link ChatTemplate#LLAMA2}. */
  public static final String DEFAULT_CHAT_TEMPLATE = ChatTemplate.LLAMA2;
  /** Request bodies above 1 MiB are refused with 413. */
  public static final long DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
  /** OpenAI's default {@code max_tokens} of {@code /v1/completions}. */
  public static final int DEFAULT_COMPLETION_MAX_TOKENS = 16;
  /**
   * {@code /v1/chat/completions} has no default limit in OpenAI's API; this cap stands in for it
   * (the model's context length cuts earlier, with {@code finish_reason: "length"}).
   */
  public static final int DEFAULT_CHAT_MAX_TOKENS = 4096;
  /** No instance id: each {@link ProxyVerticle} makes up one of its own. */
  public static final String DEFAULT_INSTANCE_ID = null;
  /**
   * An event-bus client that has used up its credits and grants none for 30 s is taken for
   * gone: long enough for any client that is still reading, short enough not to hold a decode
   * slot for a client that died without leaving the cluster.
   */
  public static final long DEFAULT_EVENT_BUS_STALL_TIMEOUT_MILLIS = 30_000;

  private String host = DEFAULT_HOST;
  private int port = DEFAULT_PORT;
  private int instances = DEFAULT_INSTANCES;
  private String apiKey = DEFAULT_API_KEY;
  private String chatTemplate = DEFAULT_CHAT_TEMPLATE;
  private long maxBodyBytes = DEFAULT_MAX_BODY_BYTES;
  private int completionMaxTokens = DEFAULT_COMPLETION_MAX_TOKENS;
  private int chatMaxTokens = DEFAULT_CHAT_MAX_TOKENS;
  private String instanceId = DEFAULT_INSTANCE_ID;
  private long eventBusStallTimeoutMillis = DEFAULT_EVENT_BUS_STALL_TIMEOUT_MILLIS;

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
  }

  /** Reads the fields {@link #toJson()} writes; absent fields keep their defaults. */
  public ProxyOptions(JsonObject json) {
    setHost(json.getString("host", DEFAULT_HOST));
    setPort(json.getInteger("port", DEFAULT_PORT));
    setInstances(json.getInteger("instances", DEFAULT_INSTANCES));
    setApiKey(json.getString("apiKey", DEFAULT_API_KEY));
    setChatTemplate(json.getString("chatTemplate", DEFAULT_CHAT_TEMPLATE));
    setMaxBodyBytes(json.getLong("maxBodyBytes", DEFAULT_MAX_BODY_BYTES));
    setCompletionMaxTokens(json.getInteger("completionMaxTokens", DEFAULT_COMPLETION_MAX_TOKENS));
    setChatMaxTokens(json.getInteger("chatMaxTokens", DEFAULT_CHAT_MAX_TOKENS));
    setInstanceId(json.getString("instanceId", DEFAULT_INSTANCE_ID));
    setEventBusStallTimeoutMillis(json.getLong("eventBusStallTimeoutMillis",
        DEFAULT_EVENT_BUS_STALL_TIMEOUT_MILLIS));
  }

  public JsonObject toJson() {
    return new JsonObject().put("host", host).put("port", port).put("instances", instances)
        .put("apiKey", apiKey).put("chatTemplate", chatTemplate).put("maxBodyBytes", maxBodyBytes)
        .put("completionMaxTokens", completionMaxTokens).put("chatMaxTokens", chatMaxTokens)
        .put("instanceId", instanceId)
        .put("eventBusStallTimeoutMillis", eventBusStallTimeoutMillis);
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
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException("port must be in 0..65535: " + port);
    }
    this.port = port;
    return this;
  }

  public int getInstances() {
    return instances;
  }

  /**
   * HTTP servers sharing the port, each on an event loop of its own (while there are no more of
   * them than Vert.x has event loops, two per core by default). Vert.x hands each new connection
   * to the next server in turn, so connections and their requests spread over the event loops.
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

  /** The {@link ChatTemplate} name that renders chat messages into a prompt. */
  public ProxyOptions setChatTemplate(String chatTemplate) {
    ChatTemplate.forName(chatTemplate);
    this.chatTemplate = chatTemplate;
    return this;
  }

  public long getMaxBodyBytes() {
    return maxBodyBytes;
  }

  public ProxyOptions setMaxBodyBytes(long maxBodyBytes) {
    if (maxBodyBytes <= 0) {
      throw new IllegalArgumentException("maxBodyBytes must be positive: " + maxBodyBytes);
    }
    this.maxBodyBytes = maxBodyBytes;
    return this;
  }

  public int getCompletionMaxTokens() {
    return completionMaxTokens;
  }

  /** {@code max_tokens} of a {@code /v1/completions} request that gives none. */
  public ProxyOptions setCompletionMaxTokens(int completionMaxTokens) {
    if (completionMaxTokens <= 0) {
      throw new IllegalArgumentException("completionMaxTokens must be positive");
    }
    this.completionMaxTokens = completionMaxTokens;
    return this;
  }

  public int getChatMaxTokens() {
    return chatMaxTokens;
  }

  /** {@code max_tokens} of a {@code /v1/chat/completions} request that gives none. */
  public ProxyOptions setChatMaxTokens(int chatMaxTokens) {
    if (chatMaxTokens <= 0) {
      throw new IllegalArgumentException("chatMaxTokens must be positive");
    }
    this.chatMaxTokens = chatMaxTokens;
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
      throw new IllegalArgumentException("eventBusStallTimeoutMillis must be positive");
    }
    this.eventBusStallTimeoutMillis = eventBusStallTimeoutMillis;
    return this;
  }
}
