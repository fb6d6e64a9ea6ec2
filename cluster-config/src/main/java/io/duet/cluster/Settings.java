package io.duet.cluster;

import static io.duet.cluster.SettingType.atLeast;
import static io.duet.cluster.SettingType.bool;
import static io.duet.cluster.SettingType.choice;
import static io.duet.cluster.SettingType.countOrAllCores;
import static io.duet.cluster.SettingType.hostPorts;
import static io.duet.cluster.SettingType.integer;
import static io.duet.cluster.SettingType.integers;
import static io.duet.cluster.SettingType.map;
import static io.duet.cluster.SettingType.optional;
import static io.duet.cluster.SettingType.path;
import static io.duet.cluster.SettingType.port;
import static io.duet.cluster.SettingType.string;

import io.duet.engine.EngineOptions;
import io.duet.engine.WeightFormatMode;
import io.duet.engine.WeightStorage;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

/**
 * Every setting of Duet, each declared once. To add one, declare a constant here with its key,
 * type, default and description (and, if users need them, an environment variable and a flag),
 * then regenerate the reference table of {@code docs/operations.md} (see
 * {@code cluster-config/README.md}); read it with {@link DuetConfig#get}.
 *
 * <p>The order of declaration is the order of the reference table.
 */
public final class Settings {

  private static final Map<String, Setting<?>> BY_KEY = new LinkedHashMap<>();
  private static final Set<String> NAMES = new TreeSet<>();

  // ---------------------------------------------------------------- cluster

  public static final Setting<String> CLUSTER_NAME = declare(Setting.builder("cluster.name",
      string()).defaultValue("duet").env("DUET_CLUSTER_NAME").flag("--cluster-name", "NAME")
      .description("Hazelcast cluster name; only members with the same name join. A proxy with "
          + "an embedded 1P1D (proxy.embedded) and no name given takes a name unique to its "
          + "process: it joins no other member and none joins it."));

  public static final Setting<String> CLUSTER_HOST = declare(Setting.builder("cluster.host",
      string()).defaultValue("127.0.0.1").env("DUET_CLUSTER_HOST").flag("--cluster-host", "HOST")
      .description("The address this member binds to and announces."));

  public static final Setting<Integer> CLUSTER_PORT = declare(Setting.builder("cluster.port",
      integer(1, 65535)).defaultValue(5701).env("DUET_CLUSTER_PORT").flag("--cluster-port", "PORT")
      .description("The first Hazelcast port tried (auto-increment is on)."));

  public static final Setting<Integer> CLUSTER_PORT_COUNT = declare(Setting.builder(
      "cluster.port-count", integer(1, 65535)).defaultValue(100)
      .description("How many ports from cluster.port may be used, and how many a member given "
          + "as a host without a port is tried on."));

  public static final Setting<List<String>> CLUSTER_MEMBERS = declare(Setting.builder(
      "cluster.members", hostPorts()).defaultValue(List.of("127.0.0.1"))
      .env("DUET_CLUSTER_MEMBERS").flag("--members", "HOST[:PORT],...")
      .description("The members to join (TCP-IP); comma-separated in the variable and the flag. "
          + "List every member's address (a topology file does), so that any member restarted "
          + "finds the others; a host without a port is tried on cluster.port-count ports from "
          + "cluster.port. Empty: this member's cluster.host."));

  public static final Setting<Integer> CLUSTER_HEARTBEAT_MILLIS = declare(Setting.builder(
      "cluster.heartbeat-millis", atLeast(1)).defaultValue(500)
      .description("How often every instance announces itself on the registry."));

  public static final Setting<Integer> CLUSTER_HEARTBEAT_TIMEOUT_MILLIS = declare(Setting.builder(
      "cluster.heartbeat-timeout-millis", atLeast(1)).defaultValue(2000)
      .requires("greater than cluster.heartbeat-millis",
          (config, timeout) -> timeout > config.get(Settings.CLUSTER_HEARTBEAT_MILLIS))
      .description("An instance silent this long is dropped from the registry (a crashed or cut "
          + "off one; an instance that stops, or whose cluster member leaves, is dropped at "
          + "once). With the defaults a silent instance is no longer picked within 2.5 s."));

  public static final Setting<Map<String, String>> CLUSTER_HAZELCAST_PROPERTIES = declare(
      Setting.builder("cluster.hazelcast-properties", map()).defaultValue(Map.of())
      .description("Hazelcast properties by their full dotted name, applied last, e.g. "
          + "hazelcast.max.no.heartbeat.seconds: 15. Duet's own defaults: no wait before "
          + "admitting a joining member (hazelcast.wait.seconds.before.join: 0), a member "
          + "heartbeat every second, a member silent for 10 s taken for dead, and split clusters "
          + "looked for every 5 s (hazelcast.merge.first.run.delay.seconds, "
          + "hazelcast.merge.next.run.delay.seconds: 5) and merged."));

  public static final Setting<Optional<String>> CLUSTER_SECRET = declare(Setting.builder(
      "cluster.secret", optional(string())).env("DUET_CLUSTER_SECRET").secret()
      .description("A secret shared by every instance of the cluster. Set: the key that opens a "
          + "KV lease is derived from it, the transfer id and the pulling decode instance's id "
          + "(HMAC-SHA256), and never travels. Unset: each lease has a random key that travels "
          + "in the prefill result and the decode request only. See docs/security.md."));

  // ---------------------------------------------------------------- KV transfer

  public static final Setting<Boolean> KV_TRANSFER_SAME_JVM_HANDOFF = declare(Setting.builder(
      "kv-transfer.same-jvm-handoff", bool()).defaultValue(true)
      .description("A decode rank whose KV comes from a prefill instance in its own JVM (the "
          + "embedded 1P1D, or a topology that runs both in one process) copies it from the "
          + "prefill engine's cache into its own: one copy, no socket, the same pull-key, "
          + "layout and lease checks as over TCP. false: always over TCP. The metric "
          + "duet_kv_pulls_total{path} counts the pulls of each path."));

  // ---------------------------------------------------------------- KV channel TLS

  public static final Setting<Optional<Path>> KV_TLS_CERT = declare(Setting.builder(
      "kv-tls.cert", optional(path())).env("DUET_KV_TLS_CERT")
      .description("The KV server's certificate chain (PEM). Set: the KV channel runs over TLS "
          + "on every instance; the certificate must name the address prefill instances announce "
          + "(cluster.host), e.g. an IP SAN. Unset: plain TCP."));

  public static final Setting<Optional<Path>> KV_TLS_KEY = declare(Setting.builder(
      "kv-tls.key", optional(path())).env("DUET_KV_TLS_KEY")
      .description("The private key of kv-tls.cert (PEM); needed by prefill instances when "
          + "kv-tls.cert is set."));

  public static final Setting<Optional<Path>> KV_TLS_TRUST = declare(Setting.builder(
      "kv-tls.trust", optional(path())).env("DUET_KV_TLS_TRUST")
      .description("The certificates (PEM) a decode instance trusts for KV servers: a CA's. "
          + "Unset: kv-tls.cert itself (a self-signed certificate shared by the cluster)."));

  // ---------------------------------------------------------------- model

  public static final Setting<Optional<Path>> MODEL_PATH = declare(Setting.builder("model.path",
      optional(path())).env("MODEL_PATH").flag("--model", "PATH")
      .description("The model: a llama2.c checkpoint file, or a Hugging Face checkpoint directory "
          + "(DeepSeek-V3). Unset: the proxy serves a built-in demo model with random weights; "
          + "prefill and decode refuse to start."));

  public static final Setting<Optional<String>> MODEL_ARCHITECTURE = declare(Setting.builder(
      "model.architecture", optional(string()))
      .description("The engine architecture that runs the model: llama2c or deepseek-v3 (for "
          + "the simulated one, see engine). Unset: "
          + "the one that recognizes the model."));

  public static final Setting<Optional<Path>> MODEL_TOKENIZER = declare(Setting.builder(
      "model.tokenizer", optional(path())).env("TOKENIZER_PATH").flag("--tokenizer", "PATH")
      .description("The tokenizer: a llama2.c checkpoint's tokenizer.bin, or a tokenizer.json. "
          + "Unset: a checkpoint directory's own tokenizer.json if it has one, else token ids "
          + "only."));

  public static final Setting<Optional<String>> MODEL_SERVED_NAME = declare(Setting.builder(
      "model.served-name", optional(string())).env("SERVED_MODEL_NAME")
      .flag("--served-model-name", "NAME")
      .whenUnset(config -> config.get(Settings.MODEL_PATH).map(Settings::fileStem)
          .or(() -> Optional.of(Settings.SIM_SERVED_NAME)
              .filter(name -> config.get(Settings.ENGINE).equals(Settings.ENGINE_SIM))))
      .description("The model name clients use. Unset: the file name of model.path without its "
          + "extension (with engine: sim, duet-sim)."));


  public static final Setting<Optional<String>> MODEL_CHAT_TEMPLATE = declare(Setting.builder(
      "model.chat-template", optional(choice("deepseek-v3", "llama2", "plain")))
      .description("How the proxy renders chat messages into a prompt: llama2 as run.c's chat "
          + "mode ([INST] ... [/INST]), plain as role-prefixed lines, deepseek-v3 as DeepSeek-V3's "
          + "template (<｜User｜>...<｜Assistant｜>). Unset: the template the model's instances "
          + "announce (llama2 for llama2.c checkpoints, the one a Hugging Face checkpoint's "
          + "tokenizer_config.json holds)."));

  public static final Setting<WeightStorage> MODEL_WEIGHTS = declare(Setting.builder(
      "model.weights", choice(WeightStorage.class))
      .defaultValue(EngineOptions.DEFAULT_WEIGHT_STORAGE)
      .description("mapped: memory-mapped from the checkpoint, opens at once. huge-pages: copied "
          + "off the heap onto transparent huge pages, faster decode, slower start."));

  public static final Setting<WeightFormatMode> MODEL_WEIGHT_FORMAT = declare(Setting.builder(
      "model.weight-format", choice(WeightFormatMode.class))
      .defaultValue(EngineOptions.DEFAULT_WEIGHT_FORMAT)
      .description("float32: BF16 and FP8 (block-scaled e4m3) weights are converted once at "
          + "load; the faster decode where memory allows (docs/performance.md). native: they "
          + "stay as the checkpoint stores them, mapped, and the kernels widen them as they "
          + "read: a quarter (FP8) or half (BF16) of float32's memory, the same tokens. Float32 "
          + "checkpoints are read as they are either way."));

  public static final Setting<Optional<Path>> MODEL_WARM_CACHE = declare(Setting.builder(
      "model.warm-cache", optional(path())).env("DUET_WARM_CACHE")
      .description("A directory where an instance keeps what its restart reuses: the model's "
          + "content hash, remembered with each model file's size, modification time and inode "
          + "(a changed file or a damaged entry is hashed again, never used). duet.jar up and "
          + "the ansible playbook set it. Unset: nothing is kept, every start hashes the "
          + "weights."));

  // ---------------------------------------------------------------- engine

  /** {@link #ENGINE}'s value for the engine that runs the model's weights. */
  public static final String ENGINE_REAL = "real";
  /** {@link #ENGINE}'s value for the simulated engine. */
  public static final String ENGINE_SIM = "sim";
  /** The served name of the simulated engine's model when none is configured. */
  public static final String SIM_SERVED_NAME = "duet-sim";

  public static final Setting<String> ENGINE = declare(Setting.builder("engine",
      choice(ENGINE_REAL, ENGINE_SIM)).defaultValue(ENGINE_REAL).env("DUET_ENGINE")
      .flag("--engine", "real|sim")
      .description("real: prefill and decode run model.path. sim: the simulated engine, a "
          + "DeepSeek-V3-like model without weights that answers with lorem-ipsum pseudo-text "
          + "and spends time from a timing model calibrated to DeepSeek's published figures "
          + "(docs/simulated-engine.md), so that topologies of many accelerators run on one "
          + "machine; model.path and model.architecture are then ignored, and its instances "
          + "announce it (/v1/models says owned_by: duet-sim)."));

  public static final Setting<Optional<Path>> SIM_PROFILE = declare(Setting.builder(
      "sim.profile", optional(path()))
      .description("With engine: sim, a file of the simulated engine's parameters (key = value "
          + "lines) over its defaults. Unset: the defaults."));

  public static final Setting<Map<String, String>> SIM_PARAMETERS = declare(Setting.builder(
      "sim.parameters", map()).defaultValue(Map.of())
      .description("With engine: sim, parameters of the simulated engine by name, over "
          + "sim.profile, e.g. time-scale: 2. A prefill instance's accelerators default to its "
          + "prefill.tp, a decode instance's speculative-tokens to its "
          + "decode.num-speculative-tokens."));

  // ---------------------------------------------------------------- instance

  public static final Setting<String> INSTANCE_ID = declare(Setting.builder("instance.id",
      string()).env("DUET_INSTANCE_ID").flag("--instance-id", "ID")
      .whenUnset(config -> {
        throw new IllegalStateException(
            "instance.id is unset: use DuetConfig.forRole(role) to generate one");
      })
      .description("This instance's id, unique in the cluster. Unset: the role, the host name "
          + "and 6 random hex digits, e.g. decode-node1-3fa9c2."));

  public static final Setting<Integer> INSTANCE_EVENT_LOOPS = declare(Setting.builder(
      "instance.event-loops", countOrAllCores()).defaultValue(1)
      .description("Vert.x event loops of the process. Every hand-off of a request between two "
          + "event loops is a wake-up through the kernel; with one, the proxy, prefill and decode "
          + "verticles of an embedded 1P1D run a request's whole path on one thread. More where "
          + "one thread cannot keep up: a proxy whose HTTP traffic needs more than a core (with "
          + "proxy.http-instances), or many decode ranks in one process pulling KV over TCP."));

  public static final Setting<Integer> INSTANCE_DRAIN_TIMEOUT_SECONDS = declare(Setting.builder(
      "instance.drain-timeout-seconds", atLeast(0)).defaultValue(30)
      .description("How long a stopping instance (SIGTERM) may take to finish its requests: it "
          + "refuses new ones at once (a proxy closes its listening socket), then stops when its "
          + "streams have ended and, on a prefill instance, its leased KV has been pulled, or "
          + "when this time is up. 0: it stops at once. Allow this plus 20 s between SIGTERM and "
          + "SIGKILL."));

  // ---------------------------------------------------------------- proxy

  public static final Setting<String> PROXY_HOST = declare(Setting.builder("proxy.host",
      string()).defaultValue("127.0.0.1")
      .description("The address the proxy's HTTP server binds to."));

  public static final Setting<Integer> PROXY_PORT = declare(Setting.builder("proxy.port", port())
      .defaultValue(7000).env("DUET_PROXY_PORT").flag("--port", "PORT")
      .description("The proxy's HTTP port (0 = any free port)."));

  public static final Setting<Integer> PROXY_HTTP_INSTANCES = declare(Setting.builder(
      "proxy.http-instances", countOrAllCores()).defaultValue(1)
      .description("HTTP servers sharing the port, spread over the process's event loops "
          + "(instance.event-loops)."));

  public static final Setting<Integer> PROXY_REQUEST_TIMEOUT_SECONDS = declare(Setting.builder(
      "proxy.request-timeout-seconds", atLeast(1)).defaultValue(600)
      .description("The end-to-end limit of one request."));

  public static final Setting<Integer> PROXY_STREAM_CREDITS = declare(Setting.builder(
      "proxy.stream-credits", atLeast(1)).defaultValue(32)
      .description("Decode events a stream may have in flight to the proxy."));

  public static final Setting<Boolean> PROXY_FIRST_TOKEN_FROM_PREFILL = declare(Setting.builder(
      "proxy.first-token-from-prefill", bool()).defaultValue(true)
      .description("Stream the first token to the client as soon as the prefill instance "
          + "answers, before the decode instance has pulled the KV; a request that its first "
          + "token ends (max_tokens 1, an end token, a stop string) then never reaches a decode "
          + "instance. false: the decode instance streams every token, the first included."));

  public static final Setting<Boolean> PROXY_KV_LAYER_STREAMING = declare(Setting.builder(
      "proxy.kv-layer-streaming", bool()).defaultValue(false)
      .description("With proxy.first-token-from-prefill, ask a decode instance to take a "
          + "request at the same time as the prefill instance computes it, so that the KV "
          + "moves layer by layer while the prompt is computed; only with instances that "
          + "announce it, a decode slot free at once, and max_tokens above 1. false: the KV "
          + "moves once the prefill has ended."));

  public static final Setting<Boolean> PROXY_EMBEDDED = declare(Setting.builder("proxy.embedded",
      bool()).defaultValue(true).switchFlag("--embedded")
      .description("Also run one prefill and one decode instance in the proxy's JVM."));

  public static final Setting<Integer> PROXY_MAX_BODY_BYTES = declare(Setting.builder(
      "proxy.max-body-bytes", atLeast(1)).defaultValue(1 << 20)
      .description("Request bodies above this size are refused with 413."));

  public static final Setting<Integer> PROXY_MAX_CONNECTIONS = declare(Setting.builder(
      "proxy.max-connections", atLeast(1)).defaultValue(4096)
      .description("HTTP connections the proxy holds at once (over all its HTTP servers); one "
          + "more is closed as soon as it is accepted."));

  public static final Setting<Integer> PROXY_IDLE_TIMEOUT_SECONDS = declare(Setting.builder(
      "proxy.idle-timeout-seconds", atLeast(1)).defaultValue(60)
      .description("An HTTP connection with no request in progress for this long is closed "
          + "(within a quarter more); a request being answered, streamed or not, however long "
          + "it takes, keeps its connection open."));

  public static final Setting<Integer> PROXY_BODY_TIMEOUT_SECONDS = declare(Setting.builder(
      "proxy.body-timeout-seconds", atLeast(1)).defaultValue(30)
      .description("A request whose body has not fully arrived this long after its headers is "
          + "answered 408 and its connection closed."));

  public static final Setting<Boolean> PROXY_H2C_UPGRADE = declare(Setting.builder(
      "proxy.h2c-upgrade", bool()).defaultValue(false)
      .description("Whether the proxy accepts HTTP/2 over cleartext (an Upgrade: h2c or the "
          + "HTTP/2 preface). Off: HTTP/1.1 only, whose limits above are the ones tested."));

  public static final Setting<Integer> PROXY_COMPLETION_MAX_TOKENS = declare(Setting.builder(
      "proxy.completion-max-tokens", atLeast(1)).defaultValue(16)
      .description("max_tokens of a /v1/completions request that gives none (OpenAI's "
          + "default)."));

  public static final Setting<Integer> PROXY_CHAT_MAX_TOKENS = declare(Setting.builder(
      "proxy.chat-max-tokens", atLeast(1)).defaultValue(4096)
      .description("max_tokens of a /v1/chat/completions request that gives none; OpenAI has "
          + "no limit there, and the model's context cuts earlier."));

  public static final Setting<Integer> PROXY_DECODE_RANK_CAP = declare(Setting.builder(
      "proxy.decode-rank-cap", atLeast(1)).defaultValue(25)
      .description("Requests this proxy keeps in flight on one decode rank at most (the "
          + "reference deployment's \"proxy batch size\"; its advice: n+1 for an average "
          + "concurrency of n per rank). Requests beyond it wait in the proxy's queue. "
          + "Reloadable."));

  public static final Setting<Integer> PROXY_QUEUE_SIZE = declare(Setting.builder(
      "proxy.queue-size", atLeast(0)).defaultValue(1024)
      .description("Prefilled requests that may wait in the proxy for a decode rank under its "
          + "cap; while it is full, new requests are refused with 429 and Retry-After. "
          + "Reloadable."));

  public static final Setting<Integer> PROXY_EVENTBUS_STALL_TIMEOUT_SECONDS = declare(
      Setting.builder("proxy.eventbus-stall-timeout-seconds", atLeast(1)).defaultValue(30)
      .description("An event-bus client that has used up its credits and grants none for this "
          + "long is taken for gone and its request cancelled: long enough for a client that is "
          + "still reading, short enough not to hold a decode slot for one that died."));

  public static final Setting<String> PROXY_PREFILL_POLICY = declare(Setting.builder(
      "proxy.prefill-policy", string()).defaultValue("least-prompt-tokens")
      .description("The routing policy that picks each request's prefill instance: "
          + "least-prompt-tokens, round-robin, prefix-affinity, or one registered by a jar (see "
          + "proxy-service/README.md). Reloadable."));

  public static final Setting<Map<String, String>> PROXY_PREFILL_POLICY_PARAMS = declare(
      Setting.builder("proxy.prefill-policy-params", map()).defaultValue(Map.of())
      .description("The prefill routing policy's parameters, by name. Reloadable."));

  public static final Setting<String> PROXY_DECODE_POLICY = declare(Setting.builder(
      "proxy.decode-policy", string()).defaultValue("least-load")
      .description("The routing policy that picks each request's decode target and orders the "
          + "requests waiting for one: least-load, longest-first, or one registered by a jar. "
          + "Reloadable."));

  public static final Setting<Map<String, String>> PROXY_DECODE_POLICY_PARAMS = declare(
      Setting.builder("proxy.decode-policy-params", map()).defaultValue(Map.of())
      .description("The decode routing policy's parameters, by name. Reloadable."));

  // ---------------------------------------------------------------- prefill

  public static final Setting<Integer> PREFILL_HTTP_PORT = declare(Setting.builder(
      "prefill.http-port", port()).defaultValue(0)
      .description("Status port (health, metrics) of a prefill instance (0 = any free port)."));

  public static final Setting<Integer> PREFILL_KV_PORT = declare(Setting.builder(
      "prefill.kv-port", port()).defaultValue(0)
      .description("The KV transfer server's port (0 = any free port)."));

  public static final Setting<Integer> PREFILL_TP = declare(Setting.builder("prefill.tp",
      atLeast(1)).defaultValue(1)
      .description("Tensor-parallel size of a prefill instance: the accelerators one instance "
          + "spans in the reference deployment. The Java engine computes on one process's cores; "
          + "topology files record it and validation checks it."));

  public static final Setting<Integer> PREFILL_MAX_BATCH_TOKENS = declare(Setting.builder(
      "prefill.max-batch-tokens", atLeast(1)).defaultValue(2048)
      .description("Prompt tokens prefilled together in one batch."));

  public static final Setting<Integer> PREFILL_MAX_WAITING = declare(Setting.builder(
      "prefill.max-waiting", atLeast(0)).defaultValue(256)
      .description("Queued prefill requests beyond which new ones are refused as overloaded."));

  public static final Setting<Integer> PREFILL_LEASE_SECONDS = declare(Setting.builder(
      "prefill.lease-seconds", atLeast(1)).defaultValue(30)
      .description("How long prefilled KV is held for a decode instance to pull it."));

  public static final Setting<Integer> PREFILL_KV_STALL_TIMEOUT_SECONDS = declare(Setting.builder(
      "prefill.kv-stall-timeout-seconds", atLeast(1)).defaultValue(10)
      .description("How long a KV send may wait for its reader before the connection is closed "
          + "and the pull lets go of its blocks."));

  public static final Setting<Integer> PREFILL_KV_FRAME_TIMEOUT_SECONDS = declare(
      Setting.builder("prefill.kv-frame-timeout-seconds", atLeast(1)).defaultValue(10)
      .description("A frame a KV client has begun and not finished within this closes its "
          + "connection (the client frames are a few hundred bytes)."));

  public static final Setting<Integer> PREFILL_KV_IDLE_TIMEOUT_SECONDS = declare(
      Setting.builder("prefill.kv-idle-timeout-seconds", atLeast(1)).defaultValue(300)
      .description("A KV connection that neither reads nor writes this long is closed (decode "
          + "instances open pooled connections again as needed)."));

  public static final Setting<Integer> PREFILL_KV_MAX_CONNECTIONS = declare(Setting.builder(
      "prefill.kv-max-connections", atLeast(1)).defaultValue(1024)
      .description("KV connections a prefill instance holds at once; one more is closed as soon "
          + "as it is accepted. Each decode rank opens up to decode.kv-connections-per-peer."));

  public static final Setting<Integer> PREFILL_KV_CACHE_MB = declare(Setting.builder(
      "prefill.kv-cache-mb", atLeast(1)).defaultValue(engineKvCacheMb())
      .description("The prefill instance's KV cache size in MiB."));

  public static final Setting<Integer> PREFILL_THREADS = declare(Setting.builder(
      "prefill.threads", countOrAllCores()).defaultValue(0)
      .description("Compute threads of a prefill instance."));

  // ---------------------------------------------------------------- decode

  public static final Setting<Integer> DECODE_HTTP_PORT = declare(Setting.builder(
      "decode.http-port", port()).defaultValue(0)
      .requires("with room for a status port per rank: at most 65536 - decode.dp, or 0",
          (config, port) -> port == 0 || port + config.get(Settings.DECODE_DP) - 1 <= 65535)
      .description("Status port (health, metrics) of rank 0 of a decode instance; rank r listens "
          + "on decode.http-port + r (0 = any free port for every rank)."));

  public static final Setting<Integer> DECODE_MAX_NUM_SEQS = declare(Setting.builder(
      "decode.max-num-seqs", atLeast(1)).defaultValue(32)
      .description("Sequences decoded together in the running batch of each decode rank."));

  public static final Setting<Integer> DECODE_DP = declare(Setting.builder("decode.dp",
      atLeast(1)).defaultValue(1)
      .description("Data-parallel ranks of a decode instance, all in its one JVM: each rank has "
          + "its own batch, KV cache, compute threads, registry entry and status port "
          + "(decode.http-port + rank); the model's weights are loaded once and shared."));

  public static final Setting<Integer> DECODE_TP = declare(Setting.builder("decode.tp",
      atLeast(1)).defaultValue(1)
      .description("Tensor-parallel size of each decode rank in the reference deployment; the "
          + "instance's accelerator count is dp x tp."));

  public static final Setting<Integer> DECODE_RANKS = declare(Setting.builder("decode.ranks",
      atLeast(1)).whenUnset(Settings::decodeRanks)
      .requiresEqual("decode.dp x decode.tp", Settings::decodeRanks)
      .description("The accelerator ranks of a decode instance, as an inventory counts them: "
          + "dp x tp. A topology file states it so that a dp or tp written wrong is caught. "
          + "Unset: dp x tp."));

  public static final Setting<Integer> DECODE_EP = declare(Setting.builder("decode.ep",
      atLeast(1)).defaultValue(1)
      .requires("that is 1 or divides decode.dp, or, with decode.ep-nodes, a multiple of "
          + "decode.dp that divides decode.dp x the nodes",
          (config, ep) -> ep == 1 || ExpertParallelNodes.groupsFit(config, ep))
      .description("Expert-parallel size of a decode instance: each group of this many "
          + "consecutive ranks splits the model's routed experts between them and steps in "
          + "lockstep, sending tokens' rows to the ranks holding their experts (1: every rank "
          + "holds every expert and steps on its own). A group lies in one JVM (ep divides "
          + "decode.dp) or spans whole JVMs listed in decode.ep-nodes (ep a multiple of "
          + "decode.dp). Must also divide the expert slots (decode.expert-slots, or the model's "
          + "routed experts); a model without routed experts ignores it."));

  public static final Setting<List<String>> DECODE_EP_NODES = declare(Setting.builder(
      "decode.ep-nodes", hostPorts()).defaultValue(List.of())
      .requires("with a port in each item and room for a port per rank (PORT + decode.dp - 1 "
          + "at most 65535)", (config, nodes) -> ExpertParallelNodes.wellFormed(config, nodes))
      .description("The JVMs (nodes) of a decode instance whose expert-parallel groups span "
          + "several: each node's data-channel address, in node order. Each node is a decode "
          + "instance of its own (its own id, registry entries and status ports) with the same "
          + "decode.dp, decode.ep and list, and its own decode.ep-node; rank r of node n is rank "
          + "n x decode.dp + r of the expert-parallel instance and listens on the node's HOST at "
          + "PORT + r. The connections are authenticated with cluster.secret when it is set. A "
          + "node whose group breaks (a peer node stopped or failed) fails its requests with the "
          + "reason and must be restarted with the others: docs/architecture.md. Empty: every "
          + "rank is in this JVM."));

  public static final Setting<Integer> DECODE_EP_NODE = declare(Setting.builder(
      "decode.ep-node", atLeast(0)).defaultValue(0)
      .requires("that is an index of decode.ep-nodes (0 when it is empty)",
          (config, node) -> node < Math.max(1, config.get(Settings.DECODE_EP_NODES).size()))
      .description("This node's index in decode.ep-nodes: its decode.dp ranks are ranks "
          + "[ep-node x dp, (ep-node + 1) x dp) of the expert-parallel instance."));

  public static final Setting<Integer> DECODE_EXPERT_SLOTS = declare(Setting.builder(
      "decode.expert-slots", atLeast(0)).defaultValue(0)
      .description("Routed-expert slots of each expert-parallel group of a decode instance: the "
          + "model's routed experts and, beyond them, redundant copies of experts 0, 1, ... that "
          + "share their rows (the reference's EP144 runs 288 slots, 2 per rank, for 256 "
          + "experts). At least the routed experts and a multiple of decode.ep; 0: one slot per "
          + "expert."));

  public static final Setting<Integer> DECODE_NUM_SPECULATIVE_TOKENS = declare(Setting.builder(
      "decode.num-speculative-tokens", atLeast(0)).defaultValue(0)
      .description("Draft tokens a decode step verifies per sequence (MTP); 0 turns speculative "
          + "decoding off. With a real model, 1 runs the checkpoint's MTP module (DeepSeek-V3's "
          + "num_nextn_predict_layers) in prefill and decode instances alike, whose KV then has "
          + "the module's layer (the KV layout fingerprint refuses a mix); a model without one "
          + "fails at start-up. The simulated engine takes any count."));

  public static final Setting<List<Integer>> DECODE_GEAR_LIST = declare(Setting.builder(
      "decode.decode-gear-list", integers(1)).whenUnset(Settings::decodeGears)
      .requiresEqual("[decode.max-num-seqs x (1 + decode.num-speculative-tokens)]",
          Settings::decodeGears)
      .description("The batch sizes, in tokens per step, a decode rank's graphs are compiled "
          + "for (the reference deployment's decode_gear_list): one gear of max-num-seqs x "
          + "(1 + num-speculative-tokens), e.g. [64] for 32 sequences with MTP 1. The Java engine "
          + "runs any batch size; topology files record it and validation checks it. Unset: "
          + "that one gear."));

  public static final Setting<Integer> DECODE_MAX_WAITING = declare(Setting.builder(
      "decode.max-waiting", atLeast(0)).defaultValue(256)
      .description("Queued decode requests beyond the batch of each decode rank before new ones "
          + "are refused as overloaded."));

  public static final Setting<Integer> DECODE_KV_CACHE_MB = declare(Setting.builder(
      "decode.kv-cache-mb", atLeast(1)).defaultValue(engineKvCacheMb())
      .description("The KV cache size of each decode rank in MiB."));

  public static final Setting<Integer> DECODE_THREADS = declare(Setting.builder(
      "decode.threads", atLeast(0)).defaultValue(0)
      .description("Compute threads of each decode rank. 0: the JVM's cores divided evenly "
          + "among the decode.dp ranks, rounded down and at least 1 (4 each for 2 ranks on 8 "
          + "cores), so that the ranks do not oversubscribe the cores."));

  public static final Setting<Integer> DECODE_KV_PULL_TIMEOUT_SECONDS = declare(Setting.builder(
      "decode.kv-pull-timeout-seconds", atLeast(1)).defaultValue(30)
      .description("The limit for pulling one sequence's KV from its prefill instance."));

  public static final Setting<Integer> DECODE_KV_CONNECTIONS_PER_PEER = declare(Setting.builder(
      "decode.kv-connections-per-peer", atLeast(1)).defaultValue(4)
      .description("KV connections each decode rank keeps open to each prefill instance."));

  // ---------------------------------------------------------------- log, secrets

  public static final Setting<Optional<Path>> LOG_PATH = declare(Setting.builder("log.path",
      optional(path())).env("LOG_PATH").flag("--log-path", "DIR")
      .description("Directory for log files, one rolling file per instance. Unset: console "
          + "only."));

  public static final Setting<Optional<String>> API_KEY = declare(Setting.builder("api-key",
      optional(string())).env("DUET_API_KEY").secret()
      .description("The key clients must present (Authorization: Bearer) on /v1/*. Unset: "
          + "none required."));

  private Settings() {
  }

  /** Every setting, in the order of declaration. */
  public static Collection<Setting<?>> all() {
    return Collections.unmodifiableCollection(BY_KEY.values());
  }

  /** The setting of a key, if one is declared. */
  public static Optional<Setting<?>> find(String key) {
    return Optional.ofNullable(BY_KEY.get(key));
  }

  /**
   * The setting a dotted path belongs to: the setting of that key, or the one whose value holds
   * the path (an entry of a map, or anything nested under a setting of another type).
   */
  public static Optional<Setting<?>> owner(String path) {
    String key = path;
    while (!BY_KEY.containsKey(key) && key.contains(".")) {
      key = key.substring(0, key.lastIndexOf('.'));
    }
    return find(key);
  }

  private static <T> Setting<T> declare(Setting.Builder<T> builder) {
    Setting<T> setting = builder.build();
    List<String> names = new ArrayList<>(List.of(setting.key()));
    setting.env().ifPresent(names::add);
    setting.flag().ifPresent(flag -> names.add(flag.name()));
    for (String name : names) {
      if (!NAMES.add(name)) {
        throw new IllegalStateException(name + " is declared twice");
      }
    }
    BY_KEY.put(setting.key(), setting);
    return setting;
  }

  private static int engineKvCacheMb() {
    return (int) (EngineOptions.DEFAULT_KV_CACHE_BYTES >> 20);
  }

  private static int decodeRanks(DuetConfig config) {
    return config.get(DECODE_DP) * config.get(DECODE_TP);
  }

  private static List<Integer> decodeGears(DuetConfig config) {
    return List.of(config.get(DECODE_MAX_NUM_SEQS)
        * (1 + config.get(DECODE_NUM_SPECULATIVE_TOKENS)));
  }

  /** A file's name without its extension: the served name of a model file. */
  private static String fileStem(Path file) {
    String name = file.getFileName().toString();
    int dot = name.lastIndexOf('.');
    return dot > 0 ? name.substring(0, dot) : name;
  }
}
