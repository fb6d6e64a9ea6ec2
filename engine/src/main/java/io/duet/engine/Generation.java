package io.duet.engine;

import java.util.Arrays;

/**
 * The token-by-token bookkeeping of one request: picks the next token from the sequence's
 * logits, and turns each token into a text delta while watching for every way to stop (EOS or
 * a stop token, a stop string, {@code maxTokens}, a full context).
 *
 * <p>The model's end tokens ({@link ModelInfo#endTokens()}) end a generation unless
 * {@link SamplingParams#ignoreEos()} is set. Before {@link SamplingParams#minTokens()} tokens,
 * no token that would end it can be sampled. Control tokens
 * ({@link ModelInfo#isControlToken}) count as generated tokens but never add text.
 */
public final class Generation {

  /** What one token added. {@code finish} is null while the generation goes on. */
  public record Delta(int token, String text, FinishReason finish) {
  }

  private final Engine engine;
  private final Sequence sequence;
  private final SamplingParams params;
  private final Sampler sampler;
  private final StreamingDetokenizer detokenizer;
  private final StopStringFilter stopStrings;
  private final StringBuilder text = new StringBuilder();
  private int[] outputTokens = new int[16];
  private int outputCount;
  private FinishReason finish;

  /**
   * @param sampler the sampler to draw with; a fresh one from {@code params}, or one restored
   *     from the state another engine left it in
   */
  public Generation(Engine engine, Sequence sequence, SamplingParams params, Sampler sampler) {
    this.engine = engine;
    this.sequence = sequence;
    this.params = params;
    this.sampler = sampler;
    Tokenizer tokenizer = engine.tokenizer();
    this.detokenizer = tokenizer == null ? null
        : new StreamingDetokenizer(tokenizer, sequence.lastToken());
    this.stopStrings = new StopStringFilter(params.stopStrings());
  }

  public Sequence sequence() {
    return sequence;
  }

  /** Samples the next token from the sequence's current logits. */
  public int sampleNext() {
    return sample(engine.info(), params, sampler, sequence.logits(), outputCount);
  }

  /**
   * Verifies the draft the last step computed as the sequence's last token, against the first
   * of its two logits rows ({@link Sampler#verify}): returns the draft when it is kept, else the
   * token that takes its place. Either way the result is what {@link #sampleNext} would have
   * drawn in distribution (and exactly, at temperature 0).
   */
  public int verifyDraft() {
    float[] logits = sequence.logits(0);
    withholdEnds(engine.info(), params, logits, outputCount);
    return sampler.verify(logits, sequence.lastToken());
  }

  /** Tokens this generation may still emit before {@code maxTokens}. */
  public int tokensLeft() {
    return params.maxTokens() - outputCount;
  }

  /**
   * Samples a generation's next token from {@code logits} (which it may overwrite) when
   * {@code generated} tokens came before it: below {@link SamplingParams#minTokens()}, the tokens
   * that would stop the generation are left out. The prefill service samples a generation's
   * first token with it, the decode service the others.
   */
  public static int sample(ModelInfo info, SamplingParams params, Sampler sampler,
      float[] logits, int generated) {
    withholdEnds(info, params, logits, generated);
    return sampler.sample(logits);
  }

  /** Before {@link SamplingParams#minTokens()}, takes the tokens that would stop out of reach. */
  private static void withholdEnds(ModelInfo info, SamplingParams params, float[] logits,
      int generated) {
    if (generated < params.minTokens()) {
      if (!params.ignoreEos()) {
        for (int token : info.endTokens()) {
          logits[token] = Float.NEGATIVE_INFINITY;
        }
      }
      for (int token : params.stopTokenIds()) {
        if (token >= 0 && token < logits.length) {
          logits[token] = Float.NEGATIVE_INFINITY;
        }
      }
    }
  }

  /**
   * Records a generated token: decides whether it ends the generation and what text it adds.
   * When the generation goes on, the caller appends the token to the sequence and steps it.
   */
  public Delta accept(int token) {
    return accept(token, 0);
  }

  /**
   * {@link #accept} for a draft that the last step verified and kept: it is already the
   * sequence's last token, which the context check must not count twice.
   */
  public Delta acceptDraft(int token) {
    return accept(token, 1);
  }

  private Delta accept(int token, int alreadyInSequence) {
    if (finish != null) {
      throw new IllegalStateException("generation already finished: " + finish);
    }
    if (isStopToken(token)) {
      finish = FinishReason.STOP;
      String rest = flushText();
      text.append(rest);
      return new Delta(token, rest, finish);
    }
    if (outputCount == outputTokens.length) {
      outputTokens = Arrays.copyOf(outputTokens, outputCount * 2);
    }
    outputTokens[outputCount++] = token;
    String delta = "";
    if (detokenizer != null && engine.info().isControlToken(token)) {
      detokenizer.skip(token);
    } else if (detokenizer != null) {
      StopStringFilter.Result result = stopStrings.accept(detokenizer.accept(token));
      delta = result.text();
      if (result.stopped()) {
        finish = FinishReason.STOP;
      }
    }
    if (finish == null && (outputCount >= params.maxTokens()
        || engine.contextRemaining(sequence) + alreadyInSequence <= 0)) {
      finish = FinishReason.LENGTH;
      delta += flushText();
    }
    text.append(delta);
    return new Delta(token, delta, finish);
  }

  private boolean isStopToken(int token) {
    if (!params.ignoreEos() && engine.info().isEndToken(token)) {
      return true;
    }
    return params.stopTokenIds().contains(token);
  }

  /** Text held back by the detokenizer and the stop-string filter, released at the end. */
  private String flushText() {
    if (detokenizer == null) {
      return "";
    }
    StopStringFilter.Result tail = stopStrings.accept(detokenizer.flush());
    return tail.stopped() ? tail.text() : tail.text() + stopStrings.flush();
  }

  public FinishReason finishReason() {
    return finish;
  }

  /** Generated tokens so far (a stop token that ended the generation is not included). */
  public int[] outputTokens() {
    return Arrays.copyOf(outputTokens, outputCount);
  }

  /** The newest generated token, which the sequence takes next. */
  public int lastOutputToken() {
    if (outputCount == 0) {
      throw new IllegalStateException("no token generated yet");
    }
    return outputTokens[outputCount - 1];
  }

  public int outputTokenCount() {
    return outputCount;
  }

  /** All text emitted so far. */
  public String text() {
    return text.toString();
  }

  public long samplerState() {
    return sampler.state();
  }
}
