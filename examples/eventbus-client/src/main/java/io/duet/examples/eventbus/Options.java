package io.duet.examples.eventbus;

import java.util.ArrayList;
import java.util.List;

/** The command line of {@link EventBusClient}. */
record Options(String clusterName, List<String> members, int port, int portCount, String model,
    String prompt, boolean chat, String system, int maxTokens, float temperature,
    boolean ignoreEos, String apiKey, int credits, int cancelAfter) {

  static final String USAGE = """
      usage: java -jar eventbus-client.jar [options] PROMPT
        --cluster-name NAME  the Duet cluster to join (default: duet)
        --members LIST       members to join through, comma-separated host or host:port
                             (default: 127.0.0.1)
        --port PORT          first port of this member; a member given without a port is
                             looked for from here on too (default: 5701)
        --port-count N       ports tried from --port (default: 100)
        --model NAME         the served model (default: deepseek)
        --chat               send PROMPT as the user's message of a chat
        --system TEXT        with --chat: a system message before it
        --max-tokens N       tokens to generate (default: the proxy's default)
        --temperature T      0 is greedy (default: 0)
        --ignore-eos         generate past the end-of-sequence token
        --api-key KEY        the proxy's API key, if it requires one
        --credits N          events in flight before more credit is granted (default: 16)
        --cancel-after N     cancel the request once N events have arrived
      """;

  /** @throws IllegalArgumentException naming what is wrong with {@code args} */
  static Options parse(String[] args) {
    String clusterName = "duet";
    List<String> members = List.of("127.0.0.1");
    int port = 5701;
    int portCount = 100;
    String model = "deepseek";
    boolean chat = false;
    String system = null;
    int maxTokens = 0;
    float temperature = 0f;
    boolean ignoreEos = false;
    String apiKey = null;
    int credits = 16;
    int cancelAfter = 0;
    List<String> words = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      switch (arg) {
        case "--chat" -> chat = true;
        case "--ignore-eos" -> ignoreEos = true;
        case "--cluster-name", "--members", "--port", "--port-count", "--model", "--system",
            "--max-tokens", "--temperature", "--api-key", "--credits", "--cancel-after" -> {
          if (++i == args.length) {
            throw new IllegalArgumentException(arg + " needs a value");
          }
          String value = args[i];
          switch (arg) {
            case "--cluster-name" -> clusterName = value;
            case "--members" -> members = List.of(value.split(","));
            case "--port" -> port = Integer.parseInt(value);
            case "--port-count" -> portCount = Integer.parseInt(value);
            case "--model" -> model = value;
            case "--system" -> system = value;
            case "--max-tokens" -> maxTokens = Integer.parseInt(value);
            case "--temperature" -> temperature = Float.parseFloat(value);
            case "--api-key" -> apiKey = value;
            case "--credits" -> credits = Integer.parseInt(value);
            default -> cancelAfter = Integer.parseInt(value);
          }
        }
        default -> {
          if (arg.startsWith("--")) {
            throw new IllegalArgumentException("unknown option " + arg);
          }
          words.add(arg);
        }
      }
    }
    if (words.size() != 1) {
      throw new IllegalArgumentException("give one PROMPT (quote it), not " + words.size());
    }
    return new Options(clusterName, members, port, portCount, model, words.get(0), chat, system,
        maxTokens, temperature, ignoreEos, apiKey, credits, cancelAfter);
  }
}
