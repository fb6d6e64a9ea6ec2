package io.duet.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.Topology;
import io.duet.deploy.impl.Topologies;
import io.duet.engine.Engine;
import io.duet.engine.OfflineGenerator;
import io.duet.engine.SamplingParams;
import io.duet.service.ServiceTests;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.Yaml;

/**
 * The ansible playbook for real, against this machine ({@code ansible_connection: local}): the
 * shipped 2P1D inventory, moved to ports, a cluster name and directories of its own, comes up
 * with one {@code ansible-playbook} run; the README's streaming curl gets the engine's own
 * greedy text; {@code --tags run_server} restarts the prefill and decode instances while the
 * proxy process stays and answers after; {@code --tags stop} leaves no process. And every
 * shipped inventory generates the topology of its topology file. Every process
 * started from the test's directory is killed at the end whatever happens. Needs Debian's
 * {@code ansible} package (.ci/run installs it).
 */
class AnsibleIT {

  private static final Duration COMMAND_TIMEOUT = Duration.ofSeconds(300);
  private static final List<String> SERVERS = List.of("p0", "p1", "d0");
  private static final String PROMPT = "how are you?";
  private static final int MAX_TOKENS = 50;
  /** The shipped inventory's lowest port: every port moves by the same offset from it. */
  private static final int FIRST_PORT = 5701;
  /** The keys of the inventory that hold a port: the cluster's, and in each role's settings. */
  private static final Set<String> PORT_KEYS = Set.of("duet_cluster_port", "port", "kv-port",
      "http-port");

  private Path work;
  private Path inventory;
  private int proxyPort;

  @BeforeEach
  void inventoryOfItsOwn() throws IOException {
    work = Files.createTempDirectory(Path.of("target"), "ansibleit-").toAbsolutePath();
    Map<String, Object> shipped = new Yaml().load(Files.readString(repo().resolve(
        "deploy/ansible/inventory_2p1d.yml")));
    int offset = freeOffset(shipped);
    movePorts(shipped, offset);
    @SuppressWarnings("unchecked")
    Map<String, Object> vars = (Map<String, Object>) ((Map<String, Object>) shipped.get("all"))
        .get("vars");
    vars.put("duet_home", work.resolve("home").toString());
    vars.put("log_path", work.resolve("logs").toString());
    vars.put("duet_cluster_name", "duet-ansibleit-" + Long.toHexString(ThreadLocalRandom.current()
        .nextLong() >>> 16));
    vars.put("model_path", ServiceTests.shared("aidreams260K.bin").toString());
    vars.put("tokenizer_path", ServiceTests.shared("aidreams260K.tok512.bin").toString());
    vars.put("java_opts", "-Xmx256m");
    inventory = Files.writeString(work.resolve("inventory_2p1d.yml"), new Yaml().dump(shipped));
    proxyPort = 7000 + offset;
  }

  @AfterEach
  void killEverythingStartedHere() {
    ProcessHandle.allProcesses().filter(process -> process.info().commandLine()
        .map(line -> line.contains(work.toString())).orElse(false))
        .forEach(ProcessHandle::destroyForcibly);
  }

  @Test
  void deploysServesRestartsTheServersUnderTheSameProxyStopsAndCleansUp() throws Exception {
    String expected;
    try (Engine engine = Engine.open(ServiceTests.aidreams(64))) {
      expected = new OfflineGenerator(engine, 1).generate(engine.tokenizer().encode(PROMPT, true),
          SamplingParams.greedy(MAX_TOKENS)).text();
    }

    playbook();
    assertEquals(expected, streamedCompletion());
    long proxy = pid("c0");
    List<Long> servers = new ArrayList<>();
    for (String server : SERVERS) {
      servers.add(pid(server));
    }

    playbook("--tags", "run_server");
    assertEquals(proxy, pid("c0"), "run_server restarted the proxy");
    assertTrue(alive(proxy), "the proxy is gone after run_server");
    for (int i = 0; i < SERVERS.size(); i++) {
      long old = servers.get(i);
      assertNotEquals(old, pid(SERVERS.get(i)), SERVERS.get(i) + " was not restarted");
      assertFalse(alive(old), SERVERS.get(i) + "'s old process (pid " + old + ") still runs");
      servers.add(pid(SERVERS.get(i)));
    }
    assertEquals(expected, streamedCompletion(), "after run_server");

    playbook("--tags", "stop");
    assertFalse(alive(proxy), "the proxy runs after stop");
    for (long server : servers) {
      assertFalse(alive(server), "pid " + server + " runs after stop");
    }
    List<String> left = ProcessHandle.allProcesses().filter(process -> process.info()
        .commandLine().map(line -> line.contains(work.toString())).orElse(false))
        .map(process -> process.pid() + " " + process.info().commandLine().orElse(""))
        .toList();
    assertEquals(List.of(), left, "processes of the deployment left after stop");

    // Every host of the inventory shares this machine's directories: all remove them at once.
    playbook("--tags", "clean_up");
    assertFalse(Files.exists(work.resolve("home")), "duet_home left after clean_up");
    assertFalse(Files.exists(work.resolve("logs")), "log_path left after clean_up");
  }

  /**
   * Each shipped inventory generates the topology of the file of the same name: every
   * instance's configuration and the shared one are the same, value for value.
   */
  @Test
  void everyShippedInventoryGeneratesItsTopologyFile() throws Exception {
    for (String name : List.of("1p1d", "2p1d", "4p1d", "8p1d", "18p1d-ep144",
        "1p1d-ep4-2jvms")) {
      Path generated = work.resolve(name + ".yaml");
      run(List.of("ansible", "-i", repo().resolve("deploy/ansible/inventory_" + name + ".yml")
          .toString(), "c0", "-m", "ansible.builtin.template", "-a", "src=" + repo().resolve(
              "deploy/ansible/templates/topology.yaml.j2") + " dest=" + generated));
      Path shipped = repo().resolve("cluster-config/topologies/" + name + ".yaml");
      Topology expected = Topologies.load(shipped, Map.of());
      Topology actual = Topologies.load(generated, Map.of());
      assertEquals(described(expected.shared(), shipped), described(actual.shared(), generated),
          name);
      assertEquals(expected.instances().stream().map(Topology.Instance::name).toList(),
          actual.instances().stream().map(Topology.Instance::name).toList(), name);
      for (Topology.Instance instance : expected.instances()) {
        assertEquals(described(instance.config(), shipped), described(actual.instance(
            instance.name()).orElseThrow().config(), generated), name + " " + instance.name());
      }
    }
  }

  /** A configuration's every key, value and source, the file named {@code FILE}. */
  private static String described(DuetConfig config, Path file) {
    return config.describe().replace(file.toString(), "FILE");
  }

  /**
   * The README's seed curl, streamed with usage in every chunk: the text of the chunks, after
   * checking that each carries its usage and that the stream ends with [DONE].
   */
  private String streamedCompletion() throws Exception {
    HttpResponse<java.util.stream.Stream<String>> response = HttpClient.newHttpClient().send(
        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + proxyPort + "/v1/completions"))
            .timeout(Duration.ofSeconds(60)).header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(new JsonObject().put("model", "deepseek")
                .put("temperature", 0).put("max_tokens", MAX_TOKENS).put("prompt", PROMPT)
                .put("stream", true).put("stream_options", new JsonObject()
                    .put("include_usage", true).put("continuous_usage_stats", true)).encode()))
            .build(), HttpResponse.BodyHandlers.ofLines());
    List<String> events = response.body().filter(line -> line.startsWith("data: "))
        .map(line -> line.substring("data: ".length())).toList();
    assertEquals(200, response.statusCode(), () -> String.join("\n", events));
    assertEquals("[DONE]", events.get(events.size() - 1), () -> String.join("\n", events));
    StringBuilder text = new StringBuilder();
    for (String event : events.subList(0, events.size() - 1)) {
      JsonObject chunk = new JsonObject(event);
      assertTrue(chunk.containsKey("usage"), event);
      if (!chunk.getJsonArray("choices").isEmpty()) {
        text.append(chunk.getJsonArray("choices").getJsonObject(0).getString("text"));
      }
    }
    return text.toString();
  }

  /** Runs the playbook over the test's inventory; fails with its output unless it succeeds. */
  private void playbook(String... args) throws Exception {
    List<String> command = new ArrayList<>(List.of("ansible-playbook", "-i",
        inventory.toString(), repo().resolve("deploy/ansible/duet.yml").toString()));
    command.addAll(List.of(args));
    run(command);
  }

  /** Runs an ansible command; fails with its output unless it succeeds in time. */
  private void run(List<String> command) throws Exception {
    Path output = Files.createTempFile(work, "ansible-", ".out");
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(output.toFile());
    LaunchedTopology.isolate(builder.environment());
    Process process;
    try {
      process = builder.start();
    } catch (IOException e) {
      throw new AssertionError(command.get(0) + " is not on the PATH (.ci/run installs Debian's "
          + "ansible package): " + e.getMessage(), e);
    }
    if (!process.waitFor(COMMAND_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
      process.destroyForcibly();
      throw new AssertionError(String.join(" ", command) + " did not end within "
          + COMMAND_TIMEOUT.toSeconds() + " s:\n" + Files.readString(output));
    }
    assertEquals(0, process.exitValue(), () -> String.join(" ", command) + ":\n" + read(output));
  }

  /** The pid the playbook recorded for a host's instance. */
  private long pid(String host) throws IOException {
    return Long.parseLong(Files.readString(work.resolve("home/run/" + host + ".pid")).trim());
  }

  private static boolean alive(long pid) {
    return ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false);
  }

  private static String read(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      return "(unreadable: " + e.getMessage() + ")";
    }
  }

  /** Adds {@code offset} to every port of the inventory. */
  private static void movePorts(Map<String, Object> inventory, int offset) {
    portEntries(inventory).forEach(entry -> entry.setValue((Integer) entry.getValue() + offset));
  }

  /**
   * An offset that moves every port of the inventory to a free one, and the port after each
   * too (the decode instance's second rank).
   */
  private static int freeOffset(Map<String, Object> inventory) {
    List<Integer> ports = portEntries(inventory).stream().map(entry -> (Integer) entry.getValue())
        .toList();
    for (int attempt = 0; attempt < 20; attempt++) {
      // below Linux's ephemeral range, so that no connection opened meanwhile takes one
      int offset = 20_000 + ThreadLocalRandom.current().nextInt(8_000) - FIRST_PORT;
      if (ports.stream().allMatch(port -> free(port + offset) && free(port + offset + 1))) {
        return offset;
      }
    }
    throw new AssertionError("no free block of ports for " + ports);
  }

  /** The entries of every map in {@code node} whose key names a port. */
  @SuppressWarnings("unchecked")
  private static List<Map.Entry<String, Object>> portEntries(Object node) {
    List<Map.Entry<String, Object>> entries = new ArrayList<>();
    if (node instanceof Map<?, ?> map) {
      for (Map.Entry<String, Object> entry : ((Map<String, Object>) map).entrySet()) {
        if (PORT_KEYS.contains(entry.getKey()) && entry.getValue() instanceof Integer) {
          entries.add(entry);
        } else {
          entries.addAll(portEntries(entry.getValue()));
        }
      }
    }
    return entries;
  }

  private static boolean free(int port) {
    try (ServerSocket socket = new ServerSocket(port)) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  private static Path repo() {
    return Path.of(System.getProperty("duet.jars.dir", "..")).toAbsolutePath().normalize();
  }
}
