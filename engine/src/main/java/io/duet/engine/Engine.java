package io.duet.engine;

import io.duet.engine.impl.PagedEngine;
import java.io.IOException;
import java.util.List;

/**
 * One model with its paged KV cache and compute threads: the unit that prefill and decode
 * services each run, whatever the model's architecture.
 *
 * <p>The life of a sequence: {@link #allocate} a prompt (reusing cached prefix blocks),
 * {@link #step} computes every token whose KV is not cached yet and leaves next-token logits in
 * the sequence, {@link #append} a sampled token, step again, ..., {@link #release}. Between
 * engines, {@link #exportKv} and {@link #beginImport} move a sequence's KV blocks. An engine
 * that drafts ({@link #draftTokens}) also proposes, after each step, a token to follow the
 * sampled one ({@link #draft}), which the next step verifies ({@link #rejectDrafts} when it is
 * not kept).
 *
 * <p>Threading: allocate, append and step belong to one thread at a time (the engine thread).
 * Export, import and release may run on other threads for sequences the engine thread is not
 * stepping (a prefilled sequence under lease, an import in progress). Engines opened together
 * by {@link #openRanks} are independent in this respect: each may have an engine thread of its
 * own.
 */
public interface Engine extends AutoCloseable {

  /**
   * Opens the model {@code options} name with the architecture that recognizes it (or the one
   * {@link EngineOptions#architecture} names), and sizes the KV cache.
   *
   * @throws ModelFormatException when no architecture can run the model, or its files are bad
   */
  static Engine open(EngineOptions options) throws IOException {
    return PagedEngine.openRanks(options, 1).get(0);
  }

  /**
   * Opens {@code count} engines over one load of the model, as {@link #open} opens one: the
   * data-parallel ranks of a decode instance. The weights are opened (mapped, or copied) once
   * and shared, since a forward pass only reads them; each engine has its own KV cache, forward
   * pass buffers and {@link EngineOptions#threads} compute threads, so each behaves as an engine
   * opened alone and may be driven by a thread of its own. The weights are let go of when the
   * last of them closes; closing one leaves the others working.
   *
   * <p>With {@link EngineOptions#expertParallel} {@code ep > 1} and a model with routed experts,
   * each {@code ep} consecutive engines form an expert-parallel group: each holds only its share
   * of the routed experts, and every mixture-of-experts layer sends tokens' rows to the engines
   * holding their experts. The engines of a group must then {@link #step} together, one thread
   * each: every engine of the group steps (with an empty list when it has nothing to compute)
   * before any of them steps again; a step waits in the exchange for the others'. Closing one
   * makes the group's later steps fail. Their output equals one engine's holding every expert.
   * With {@link EngineOptions#expertNetwork} these engines are some of the ranks of an instance
   * spread over several JVMs, and a group spanning JVMs exchanges over TCP: opening waits until
   * every rank of such a group has connected (see {@link ExpertNetwork}).
   *
   * @throws IllegalArgumentException when {@code ep} does not divide the instance's ranks
   *     ({@code count}, or the network's) and the expert slots
   * @throws io.duet.engine.spi.ExpertExchangeException when a group spanning JVMs cannot
   *     connect within the network's connect timeout
   * @param count at least 1
   * @throws ModelFormatException as {@link #open}
   */
  static List<Engine> openRanks(EngineOptions options, int count) throws IOException {
    return PagedEngine.openRanks(options, count);
  }

  /** The model's vocabulary, context, special tokens and chat template. */
  ModelInfo info();

  EngineOptions options();

  /** The tokenizer, or null when the engine was opened without one (token ids only). */
  Tokenizer tokenizer();

  /** The model, its weights' storage and the kernels in use, for logs and benchmarks. */
  EngineDescription description();

  /** The KV layout fingerprint's parts (hashes the weights on first call). */
  KvLayout layout();

  KvCacheStats kvStats();

  /** Tokens this engine has run through the model since it opened (prefix hits excluded). */
  long computedTokens();

  /**
   * Starts a sequence for a prompt. Full blocks of a prefix that an earlier sequence computed
   * are taken from the prefix cache; at least the last prompt token is always computed, since
   * its logits are needed.
   *
   * @throws KvCacheFullException when the blocks cannot be had; nothing stays allocated
   * @throws IllegalArgumentException for an empty prompt, one longer than the context, or a
   *     token outside the vocabulary
   */
  Sequence allocate(int[] prompt);

  /**
   * The KV blocks a generation of at most {@code maxTokens} tokens after a prompt of
   * {@code promptTokens} can occupy: the last sampled token is never appended, and the model's
   * context caps the rest. Schedulers reserve this much before admitting a request, so that a
   * running sequence never finds the cache full.
   */
  int blocksForGeneration(int promptTokens, int maxTokens);

  /** Room left in the model's context for more tokens of this sequence. */
  int contextRemaining(Sequence sequence);

  /**
   * Adds a token (usually the one just sampled); its KV is computed by the next step, which
   * leaves one row of logits: the next token's.
   *
   * @throws KvCacheFullException when a new block is needed and none can be had
   * @throws IllegalStateException when the model's context is full
   */
  void append(Sequence sequence, int token);

  /**
   * Adds several tokens at once, e.g. a sampled token and the draft tokens a speculative decoder
   * proposes after it; the next step computes them together and leaves a row of logits for each
   * of the last {@code logitRows} of them ({@link Sequence#logits(int)}), so that one pass
   * verifies every draft. The tokens after the first of those rows are taken as drafts: they
   * stay out of the prefix cache until the next {@link #draft} or append accepts them, and
   * {@link #rejectDrafts} drops them.
   *
   * @param logitRows in {@code [1, tokens.length]}
   */
  void append(Sequence sequence, int[] tokens, int logitRows);

  /**
   * Draft tokens this engine proposes per sequence and step: 1 when it runs the model's
   * multi-token prediction module ({@link EngineOptions#mtp}), else 0.
   */
  int draftTokens();

  /**
   * Speculative decoding's draft: after a step, once {@code next[i]} was chosen to follow
   * sequence {@code i} (and before it is appended), runs the model's next-token module over the
   * positions it has not covered yet, the last of which takes {@code next[i]}, and returns the
   * module's greedy guess of the token after {@code next[i]}. The caller then appends both,
   * {@code append(sequence, new int[] {next, draft}, 2)}, and the step verifies the draft: its
   * first logits row is the distribution of the draft's position, the second the token after.
   *
   * <p>The module's KV of a position needs the token after it, so a prompt's last position gets
   * its KV here: a prefill engine drafts after sampling the first token and before exporting.
   *
   * @throws IllegalStateException when the engine does not draft ({@link #draftTokens} 0), a
   *     sequence has tokens to compute, or was drafted from since its last step
   */
  int[] draft(List<Sequence> sequences, int[] next);

  /**
   * Drops the last {@code count} tokens of the sequence, drafts of the last
   * {@link #append(Sequence, int[], int)} that its step rejected: their KV no longer counts, and
   * blocks left empty are freed. The drafts before them are accepted.
   *
   * @throws IllegalArgumentException when the sequence has fewer unverified drafts
   */
  void rejectDrafts(Sequence sequence, int count);

  /**
   * Computes the KV of every pending token of the given sequences (whole prompts, or the tokens
   * appended since the last step) and fills each sequence's logits. Batches larger than the
   * configured limits are run as several forward passes.
   */
  void step(List<Sequence> sequences);

  /**
   * Says that no step follows soon (the caller is about to wait for work): the compute threads
   * stop waiting for the next job and sleep at once, instead of spinning on cores that another
   * engine may need. The next step wakes them.
   */
  void idle();

  /**
   * The engines of this one's expert-parallel group (see {@link #openRanks}), itself included:
   * 1 when it holds every routed expert (or the model has none) and steps on its own.
   */
  int expertParallelRanks();

  /**
   * Nanoseconds this engine's steps have spent in the all-to-all of its expert-parallel group
   * (sending rows, serving the group's, waiting for results and for the others to end the
   * step); 0 without expert parallelism.
   */
  long expertExchangeNanos();

  /**
   * Whether a rank of this engine's expert-parallel group in another JVM waits for this engine
   * to step: it has begun a step this engine has not joined, or its connection ended (which this
   * engine's next step reports by failing). Always false for a group wholly in this JVM, whose
   * ranks must be stepped together by their caller.
   */
  boolean expertPeerWaiting();

  /**
   * Has {@code wake} called, from a channel thread, whenever a rank in another JVM starts
   * {@linkplain #expertPeerWaiting waiting} for this engine between its steps; it must return at
   * once (e.g. hand a command to the engine's thread). Never called for a group wholly in this
   * JVM.
   */
  void onExpertPeerWaiting(Runnable wake);

  /**
   * Why this engine's expert-parallel group can step no more, or null while it can: a group
   * spanning JVMs stays broken once a step's exchange failed (a rank's JVM stopped or failed,
   * a timeout), and every later step fails at once; only new JVMs form it again. Never set for a
   * group wholly in this JVM, whose next step starts afresh.
   */
  String expertGroupFailure();

  /** Frees the sequence's blocks (prefix blocks stay cached for reuse). Idempotent. */
  void release(Sequence sequence);

  /**
   * The sequence's computed KV, block by block, for another engine of the same layout. The
   * sequence must stay allocated and not be stepped until the snapshot has been read.
   */
  KvSnapshot exportKv(Sequence sequence);

  /**
   * The KV of every token of the sequence, computed or pending, readable layer by layer as the
   * engine computes it, so that another engine can import the first layers while the next ones
   * are computed ({@link KvSnapshot#readyTokens}). {@code onProgress} runs on the engine thread
   * each time a step has computed one more layer of some of its tokens; it must be quick (hand
   * the news to another thread). The sequence must stay allocated until the snapshot has been
   * read, and must not be stepped past its current tokens.
   */
  KvSnapshot exportKvAsComputed(Sequence sequence, Runnable onProgress);

  /**
   * Starts importing the KV of {@code tokens} (every one computed), made by an engine of
   * {@code layout}; write its blocks into the returned import.
   *
   * @throws KvTransferException when the layout differs from this engine's or the tokens do not
   *     fit this model
   * @throws KvCacheFullException when the blocks cannot be had
   */
  KvImport beginImport(KvLayout layout, int[] tokens);

  /**
   * Runs throw-away prompts and {@code decodeSteps} decode steps in all so that the JIT compiles
   * the forward pass before real requests arrive, stopping early once {@code budgetMillis} have
   * passed. Uses no cache blocks afterwards and leaves nothing in the prefix cache. The engines
   * of an expert-parallel group warm up together, each on a thread of its own, and run every
   * step: the budget does not apply to them.
   *
   * @return how long it took, in milliseconds
   */
  long warmUp(int decodeSteps, long budgetMillis);

  /** {@link #warmUp(int, long)} without a time limit. */
  default long warmUp(int decodeSteps) {
    return warmUp(decodeSteps, Long.MAX_VALUE);
  }

  /**
   * Stops the compute threads and lets go of the weights, unless other engines opened with this
   * one by {@link #openRanks} still use them. Idempotent.
   */
  @Override
  void close();
}
