package io.duet.engine.tokenizer;

import io.duet.engine.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.OptionalInt;
import java.util.function.UnaryOperator;
import java.util.stream.IntStream;

/**
 * A Hugging Face {@code tokenizer.json} byte-level BPE tokenizer (the kind DeepSeek-V3, GPT-2,
 * Llama 3 and Qwen ship; checked id for id against the {@code tokenizers} library on
 * DeepSeek-V3's file and variants of it), encoding as that library does:
 * <ol>
 *   <li>added tokens are cut out of the text first: those with {@code normalized: false} from
 *   the raw text, then, in what remains after the normalizer ran, those with
 *   {@code normalized: true}, honouring {@code single_word}, {@code lstrip}, {@code rstrip};</li>
 *   <li>the pre-tokenizer cuts the rest into pieces ({@code Split} regexes, {@code Digits},
 *   {@code ByteLevel}, in a {@code Sequence});</li>
 *   <li>each piece's UTF-8 bytes merge into tokens by the BPE merge ranks.</li>
 * </ol>
 * Decoding is the {@code ByteLevel} decoder's, token by token: a token stands for the bytes its
 * byte-level characters encode (an added token for its own text), so a character may be split
 * between tokens; {@link io.duet.engine.StreamingDetokenizer} holds such halves back.
 *
 * <p>{@code tokenizer_config.json} beside the file, when there is one, gives the BOS and EOS
 * tokens and the chat template. The post-processor of {@code tokenizer.json} is not run: the BOS
 * is added by {@link #encode} when asked for, see {@link #bosToken}.
 *
 * <p>Anything else (another model type, a normalizer or pre-tokenizer this class does not
 * implement) is refused when the file is opened. Instances are immutable and thread-safe.
 */
public final class HfTokenizer implements Tokenizer {

  private static final String TOKENIZER_FILE = "tokenizer.json";
  private static final byte[] NOTHING = new byte[0];

  /** What {@link TokenizerFiles} reads from the files. */
  record Parts(AddedTokens rawTokens, AddedTokens normalizedTokens,
      UnaryOperator<String> normalizer, List<PreTokenizer> preTokenizers, BytePairModel model,
      byte[][] decoded, OptionalInt bos, int[] ends, String chatTemplate,
      String chatTemplateError) {
  }

  private final Parts parts;

  HfTokenizer(Parts parts) {
    this.parts = parts;
  }

  /** This tokenizer with another BPE merge algorithm, see {@link BytePairModel#withMerger}. */
  HfTokenizer withMerger(BytePairModel.Merger merger) {
    Parts p = parts;
    return new HfTokenizer(new Parts(p.rawTokens(), p.normalizedTokens(), p.normalizer(),
        p.preTokenizers(), p.model().withMerger(merger), p.decoded(), p.bos(), p.ends(),
        p.chatTemplate(), p.chatTemplateError()));
  }

  /**
   * Reads a tokenizer: {@code tokenizer.json} itself, or a directory holding it; a
   * {@code tokenizer_config.json} in the same directory is read as well.
   *
   * @throws io.duet.engine.ModelFormatException naming the file and what is wrong or not
   *     supported in it
   * @throws IOException if a file cannot be read
   */
  public static HfTokenizer open(Path tokenizerJsonOrDirectory) throws IOException {
    return new HfTokenizer(TokenizerFiles.read(tokenizerJsonOrDirectory));
  }

  /**
   * The tokenizer of a Hugging Face checkpoint: {@code configured} when one is named, else the
   * checkpoint directory's {@code tokenizer.json}; null when it has none (the model then runs
   * by token ids).
   */
  public static HfTokenizer ofCheckpoint(Path directory, Path configured) throws IOException {
    if (configured != null) {
      return open(configured);
    }
    return Files.isRegularFile(directory.resolve(TOKENIZER_FILE)) ? open(directory) : null;
  }

  /**
   * The token a prompt starts with: {@code bos_token} of {@code tokenizer_config.json} when the
   * tokenizer adds it ({@code add_bos_token}, or, without that key, a post-processor template
   * that starts with it); empty when there is none.
   */
  public OptionalInt bosToken() {
    return parts.bos();
  }

  /** The tokens that end a generation: {@code eos_token} of {@code tokenizer_config.json}. */
  public int[] endTokens() {
    return parts.ends().clone();
  }

  /**
   * The name of the chat template of {@code tokenizer_config.json}, recognised among the
   * templates Duet implements (no Jinja is run): {@code deepseek-v3} for DeepSeek-V3's, and
   * {@code plain} when the file has no template.
   *
   * @throws IllegalStateException when the template is not one Duet implements (the message
   *     names the file and the known templates), so a model with it cannot start
   */
  public String chatTemplate() {
    if (parts.chatTemplateError() != null) {
      throw new IllegalStateException(parts.chatTemplateError());
    }
    return parts.chatTemplate();
  }

  @Override
  public int vocabSize() {
    return parts.decoded().length;
  }

  /**
   * The ids of {@code text}, as {@code tokenizers} encodes it, after the {@link #bosToken} when
   * {@code bos} is set and the text does not already start with it (a chat template writes the
   * BOS into the prompt; it is never doubled). Added tokens written in the text, special ones
   * included, become those tokens.
   */
  @Override
  public int[] encode(String text, boolean bos) {
    IntStream.Builder ids = IntStream.builder();
    parts.rawTokens().split(text, new AddedTokens.Sink() {
      @Override
      public void text(String raw) {
        parts.normalizedTokens().split(parts.normalizer().apply(raw), new AddedTokens.Sink() {
          @Override
          public void text(String normalized) {
            preTokenize(0, normalized, ids);
          }

          @Override
          public void token(int id) {
            ids.add(id);
          }
        });
      }

      @Override
      public void token(int id) {
        ids.add(id);
      }
    });
    int[] encoded = ids.build().toArray();
    if (!bos || parts.bos().isEmpty()
        || (encoded.length > 0 && encoded[0] == parts.bos().getAsInt())) {
      return encoded;
    }
    return IntStream.concat(IntStream.of(parts.bos().getAsInt()), IntStream.of(encoded))
        .toArray();
  }

  private void preTokenize(int step, String piece, IntStream.Builder ids) {
    if (step == parts.preTokenizers().size()) {
      parts.model().encode(piece, ids);
    } else {
      parts.preTokenizers().get(step).split(piece, p -> preTokenize(step + 1, p, ids));
    }
  }

  /**
   * The bytes of {@code token} (the previous token does not matter here). An id that names no
   * token stands for nothing: a gap in the vocabulary, or an id past its end, which a model
   * whose output layer is padded wider than its tokenizer can sample (DeepSeek-V3's has 129,280
   * rows for 128,815 tokens), as vLLM also detokenizes it to nothing.
   */
  @Override
  public byte[] decode(int previous, int token) {
    if (token < 0) {
      throw new IllegalArgumentException("token id " + token + " is negative");
    }
    return token < parts.decoded().length ? parts.decoded()[token] : NOTHING;
  }
}
