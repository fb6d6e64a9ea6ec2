package io.duet.engine.cli;

import io.duet.engine.Tokenizer;
import io.duet.engine.llama.Llama2cTokenizer;
import io.duet.engine.tokenizer.HfTokenizer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * Prints the token ids of a text, to compare the engine's tokenizers with outside references
 * (Hugging Face {@code tokenizers}, llama2.c).
 */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
    description = "Print the token ids of a text (space-separated), or of each line of "
        + "standard input (one line of ids per line).")
final class TokenizeCommand implements Callable<Integer> {

  @Parameters(index = "0", paramLabel = "TOKENIZER", description = "a Hugging Face "
      + "tokenizer.json, a directory holding one, or a llama2.c tokenizer.bin")
  Path tokenizerPath;

  @Option(names = "-i", description = "the text (default: each line of standard input)")
  String text;

  @Option(names = "--bos", description = "start with the beginning-of-sequence token")
  boolean bos;

  /** Where the ids go and where lines come from; the console unless a test sets them. */
  PrintStream out = System.out;
  InputStream in = System.in;

  @Override
  public Integer call() throws IOException {
    Tokenizer tokenizer = open(tokenizerPath);
    if (text != null) {
      out.println(ids(tokenizer, text));
    } else {
      BufferedReader lines = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
      for (String line = lines.readLine(); line != null; line = lines.readLine()) {
        out.println(ids(tokenizer, line));
      }
    }
    out.flush();
    return 0;
  }

  private String ids(Tokenizer tokenizer, String input) {
    return Arrays.stream(tokenizer.encode(input, bos)).mapToObj(String::valueOf)
        .collect(Collectors.joining(" "));
  }

  private static Tokenizer open(Path path) throws IOException {
    if (Files.isDirectory(path) || path.getFileName().toString().endsWith(".json")) {
      return HfTokenizer.open(path);
    }
    return Llama2cTokenizer.load(path);
  }
}
