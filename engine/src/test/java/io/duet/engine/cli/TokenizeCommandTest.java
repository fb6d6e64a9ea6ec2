package io.duet.engine.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.duet.engine.TestFiles;
import io.duet.engine.tokenizer.HfTokenizer;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** {@code engine.jar tokenize}: ids of {@code -i} text or of each stdin line, both kinds. */
class TokenizeCommandTest {

  private static final Path DEEPSEEK = Path.of("models/deepseek-v3-tokenizer/tokenizer.json");

  private static String tokenize(String stdin, String... args) {
    TokenizeCommand command = new TokenizeCommand();
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    command.out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
    command.in = new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8));
    assertEquals(0, new CommandLine(command).execute(args), "exit code");
    return bytes.toString(StandardCharsets.UTF_8);
  }

  @Test
  void llama2cTokenizerBinGivesRunCsIds() {
    String tokenizer = TestFiles.shared("models/tokenizer.bin").toString();
    // run.c's ids (Llama2cTokenizerTest): its vocabulary size comes from the file alone here.
    assertEquals("1 9038 2501 263 931\n",
        tokenize("", tokenizer, "--bos", "-i", "Once upon a time"));
    assertEquals("9038 2501 263 931\n15043 3186\n\n",
        tokenize("Once upon a time\nHello world\n\n", tokenizer));
  }

  @Test
  void huggingFaceTokenizerFromFileOrDirectory() throws IOException {
    Path file = TestFiles.shared(DEEPSEEK.toString());
    HfTokenizer tokenizer = HfTokenizer.open(file);
    String text = "深度求索 DeepSeek-V3: 12345 😀 <｜User｜>hi";
    assertEquals(ids(tokenizer.encode(text, false)) + "\n", tokenize("", file.toString(), "-i",
        text));
    assertEquals(ids(tokenizer.encode(text, true)) + "\n",
        tokenize("", file.getParent().toString(), "--bos", "-i", text));
    assertEquals("0 " + ids(tokenizer.encode("a", false)), ids(tokenizer.encode("a", true)));
    assertEquals(ids(tokenizer.encode("first line", false)) + "\n"
            + ids(tokenizer.encode("  second\tline", false)) + "\n",
        tokenize("first line\r\n  second\tline\n", file.toString()));
  }

  private static String ids(int[] ids) {
    return Arrays.stream(ids).mapToObj(String::valueOf).collect(Collectors.joining(" "));
  }
}
