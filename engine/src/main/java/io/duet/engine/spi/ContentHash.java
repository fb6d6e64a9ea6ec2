package io.duet.engine.spi;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/** The {@link LoadedModel#contentHash()} of a model's files. */
public final class ContentHash {

  private ContentHash() {
  }

  /**
   * SHA-256 over the bytes of {@code files}, one after another in the order given, as lowercase
   * hex. Reads every byte.
   *
   * @throws IllegalStateException when a file cannot be read (it was readable when the model
   *     opened)
   */
  public static String sha256(List<Path> files) {
    try {
      MessageDigest digest = MessageDigest.getInstance("SHA-256");
      ByteBuffer buffer = ByteBuffer.allocateDirect(1 << 20);
      for (Path file : files) {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
          while (channel.read(buffer) >= 0) {
            buffer.flip();
            digest.update(buffer);
            buffer.clear();
          }
        } catch (IOException e) {
          throw new IllegalStateException("cannot re-read " + file + " to hash it: "
              + e.getMessage(), e);
        }
      }
      return HexFormat.of().formatHex(digest.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is a required JDK algorithm", e);
    }
  }
}
