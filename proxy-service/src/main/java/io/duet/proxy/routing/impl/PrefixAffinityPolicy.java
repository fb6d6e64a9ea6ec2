package io.duet.proxy.routing.impl;

import io.duet.proxy.routing.PrefillCandidate;
import io.duet.proxy.routing.PrefillPolicy;
import io.duet.proxy.routing.PrefillPolicyFactory;
import io.duet.proxy.routing.RoutingRequest;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@value #NAME}: prompts that begin alike go to the same prefill instance, whose prefix cache
 * then holds their common blocks, unless that instance is much busier than the others.
 *
 * <p>A prompt's key is a hash of its first {@code prefix-tokens} tokens: of a prompt of token ids
 * those ids, of a text (which the proxy has not tokenized) its first {@code prefix-tokens} x
 * {@value RoutingRequest#CHARS_PER_TOKEN} characters, the proxy's estimate of as many tokens. The
 * key chooses among the candidates by rendezvous hashing: each candidate scores a hash of the
 * key and its instance id, the highest wins. The same key so finds the same instance while the
 * instances stay, and an instance that joins takes over only the keys it now scores highest on,
 * about one in (instances + 1); the others keep their instance and their cache.
 *
 * <p>The chosen instance is given up for the least loaded one (as {@value
 * LeastPromptTokensPolicy#NAME} chooses) when its prompt tokens in flight exceed
 * {@code load-factor} x those of the least loaded plus one batch of its own (its capacity,
 * {@code prefill.max-batch-tokens}): recomputing a prefix costs less than waiting behind several
 * batches, and an instance with less than a batch queued is never too busy. A prompt shorter than
 * the key has no key and goes to the least loaded instance.
 *
 * <p>Each choice is counted in {@code duet_routing_affinity_total{outcome}}: {@code hit} (the
 * key's instance), {@code fallback} (it was too busy; also logged at DEBUG) or {@code no-prefix}.
 *
 * <p>Parameters: {@code prefix-tokens} (an integer &gt;= 1, default {@value #DEFAULT_PREFIX_TOKENS}:
 * four 16-token KV blocks) and {@code load-factor} (a number &gt;= 1, default {@value
 * #DEFAULT_LOAD_FACTOR}).
 */
public final class PrefixAffinityPolicy implements PrefillPolicy {

  public static final String NAME = "prefix-affinity";
  public static final String PREFIX_TOKENS = "prefix-tokens";
  public static final String LOAD_FACTOR = "load-factor";
  public static final int DEFAULT_PREFIX_TOKENS = 64;
  public static final double DEFAULT_LOAD_FACTOR = 2.0;

  private static final Logger LOG = LoggerFactory.getLogger(PrefixAffinityPolicy.class);
  private static final PrefillPolicy LEAST_LOADED = new LeastPromptTokensPolicy();
  private static final long FNV_OFFSET = 0xcbf29ce484222325L;
  private static final long FNV_PRIME = 0x100000001b3L;

  private final int prefixTokens;
  private final double loadFactor;
  private final Counter hits;
  private final Counter fallbacks;
  private final Counter noPrefix;

  PrefixAffinityPolicy(int prefixTokens, double loadFactor, MeterRegistry metrics) {
    this.prefixTokens = prefixTokens;
    this.loadFactor = loadFactor;
    this.hits = outcomes("hit", metrics);
    this.fallbacks = outcomes("fallback", metrics);
    this.noPrefix = outcomes("no-prefix", metrics);
  }

  private static Counter outcomes(String outcome, MeterRegistry metrics) {
    return Counter.builder("duet.routing.affinity")
        .description("Prefill choices of the prefix-affinity policy, by outcome")
        .tag("outcome", outcome).register(metrics);
  }

  @Override
  public Optional<PrefillCandidate> choose(RoutingRequest request,
      List<PrefillCandidate> candidates) {
    PrefillCandidate leastLoaded = LEAST_LOADED.choose(request, candidates).orElseThrow();
    OptionalLong key = prefixKey(request);
    if (key.isEmpty()) {
      noPrefix.increment();
      return Optional.of(leastLoaded);
    }
    PrefillCandidate affine = candidates.get(0);
    long best = score(key.getAsLong(), affine);
    for (PrefillCandidate candidate : candidates) {
      long score = score(key.getAsLong(), candidate);
      if (score > best) {
        best = score;
        affine = candidate;
      }
    }
    long load = LeastPromptTokensPolicy.inFlight(affine);
    long least = LeastPromptTokensPolicy.inFlight(leastLoaded);
    if (load > loadFactor * least + affine.entry().capacity()) {
      fallbacks.increment();
      LOG.debug("request {}: {} falls back from {} ({} prompt tokens in flight) to {} ({})",
          request.requestId(), NAME, affine.entry().instanceId(), load,
          leastLoaded.entry().instanceId(), least);
      return Optional.of(leastLoaded);
    }
    hits.increment();
    return Optional.of(affine);
  }

  /** The hash of the prompt's first tokens; empty for a prompt shorter than that. */
  OptionalLong prefixKey(RoutingRequest request) {
    long hash = FNV_OFFSET;
    if (request.prompt() != null) {
      int chars = prefixTokens * RoutingRequest.CHARS_PER_TOKEN;
      if (request.prompt().length() < chars) {
        return OptionalLong.empty();
      }
      for (int i = 0; i < chars; i++) {
        hash = (hash ^ request.prompt().charAt(i)) * FNV_PRIME;
      }
    } else {
      if (request.promptTokenIds().size() < prefixTokens) {
        return OptionalLong.empty();
      }
      for (int token : request.promptTokenIds().subList(0, prefixTokens)) {
        hash = (hash ^ token) * FNV_PRIME;
      }
    }
    return OptionalLong.of(hash);
  }

  private static long score(long key, PrefillCandidate candidate) {
    long id = FNV_OFFSET;
    String instanceId = candidate.entry().instanceId();
    for (int i = 0; i < instanceId.length(); i++) {
      id = (id ^ instanceId.charAt(i)) * FNV_PRIME;
    }
    return mix(key ^ mix(id));
  }

  /**
   * SplitMix64's finalizer: every bit of the result depends on every bit of {@code h}, so that
   * scores of one key on different instances are unrelated.
   */
  private static long mix(long h) {
    h = (h ^ (h >>> 30)) * 0xbf58476d1ce4e5b9L;
    h = (h ^ (h >>> 27)) * 0x94d049bb133111ebL;
    return h ^ (h >>> 31);
  }

  /** Registered in {@code META-INF/services/io.duet.proxy.routing.PrefillPolicyFactory}. */
  public static final class Factory implements PrefillPolicyFactory {

    private static final Set<String> PARAMETERS = Set.of(PREFIX_TOKENS, LOAD_FACTOR);

    @Override
    public String name() {
      return NAME;
    }

    /** A policy whose outcomes count in a registry of its own. */
    @Override
    public PrefillPolicy create(JsonObject params) {
      return create(params, new SimpleMeterRegistry());
    }

    @Override
    public PrefillPolicy create(JsonObject params, MeterRegistry metrics) {
      for (String name : params.fieldNames()) {
        if (!PARAMETERS.contains(name)) {
          throw new IllegalArgumentException("routing policy " + NAME + " takes the parameters "
              + PREFIX_TOKENS + " and " + LOAD_FACTOR + ", not '" + name + "'");
        }
      }
      double prefix = number(params, PREFIX_TOKENS, DEFAULT_PREFIX_TOKENS);
      if (prefix != Math.rint(prefix) || prefix > Integer.MAX_VALUE) {
        throw invalid(PREFIX_TOKENS, params, "an integer >= 1");
      }
      return new PrefixAffinityPolicy((int) prefix, number(params, LOAD_FACTOR,
          DEFAULT_LOAD_FACTOR), metrics);
    }

    /**
     * The parameter as a number &gt;= 1; the configuration gives parameters as text, code may
     * give numbers.
     */
    private static double number(JsonObject params, String name, double defaultValue) {
      Object value = params.getValue(name);
      if (value == null) {
        return defaultValue;
      }
      double number;
      try {
        number = value instanceof Number n ? n.doubleValue() : Double.parseDouble(value.toString());
      } catch (NumberFormatException e) {
        throw invalid(name, params, "a number >= 1");
      }
      if (!(number >= 1) || Double.isInfinite(number)) {
        throw invalid(name, params, "a number >= 1");
      }
      return number;
    }

    private static IllegalArgumentException invalid(String name, JsonObject params,
        String expected) {
      return new IllegalArgumentException("routing policy " + NAME + ": " + name + " must be "
          + expected + ", got '" + params.getValue(name) + "'");
    }
  }
}
