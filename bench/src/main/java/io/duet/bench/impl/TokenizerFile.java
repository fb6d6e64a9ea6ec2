package io.duet.bench.impl;

import io.duet.engine.Tokenizer;
import io.duet.engine.llama.Llama2cTokenizer;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * A llama2.c {@code tokenizer.bin} on its own, without the checkpoint that normally gives its
 * vocabulary size: the size is the number of pieces the file holds.
 */
public final class TokenizerFile {

  private TokenizerFile() {
  }

  /**
   * Loads {@code path}.
   *
   * @throws IOException when it cannot be read or is not a llama2.c tokenizer file
   */
  public static Tokenizer load(Path path) throws IOException {
    return Llama2cTokenizer.load(path, pieces(path));
  }

  /** Walks the file's entries: a 4-byte header, then per piece a score, a length and bytes. */
  private static int pieces(Path path) throws IOException {
    ByteBuffer in = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
    int pieces = 0;
    if (in.remaining() >= Integer.BYTES) {
      in.getInt();
      while (in.remaining() >= Float.BYTES + Integer.BYTES) {
        in.getFloat();
        int length = in.getInt();
        if (length < 0 || length > in.remaining()) {
          break;
        }
        in.position(in.position() + length);
        pieces++;
      }
    }
    if (pieces == 0) {
      throw new IOException(path + " is not a llama2.c tokenizer file: it holds no piece");
    }
    // The loader checks the rest: lengths against the header, trailing bytes.
    return pieces;
  }
}
