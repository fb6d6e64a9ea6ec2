package io.duet.engine.spi;

import static java.nio.charset.StandardCharsets.UTF_8;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A model's content hash remembered across restarts in a warm-cache directory, so that a restart
 * does not read every byte of the weights again: hashing is the largest part of opening a
 * memory-mapped model (1.2 s for a 61 MB checkpoint on a loaded 2-core machine; minutes for a
 * DeepSeek-V3 checkpoint of hundreds of GB), and the fingerprint that pairs prefill and decode
 * instances is built on it.
 *
 * <p>One memo file per set of model files, {@code <directory>/content-hash/<key>.memo}, holds
 * each file's identity (absolute path, size, modification time to the nanosecond, and the file
 * system's file key: device and inode), the hash, and a SHA-256 of those lines. The hash is
 * reused only when every file still has the identity it had when it was hashed; a file replaced,
 * rewritten or touched makes the memo stale, and a memo that does not parse or whose check does
 * not match is damaged: either way the hash is computed again and the memo rewritten, never used.
 * What is not detected: a file rewritten in place with its size kept and its modification time
 * set back on purpose. Memos are written to a temporary file and moved into place, so that
 * instances starting together on one host never read half of one.
 */
public final class ContentHashMemo {

  private static final Logger LOG = LoggerFactory.getLogger(ContentHashMemo.class);
  /** The first line of a memo: its format, so that a later format is a miss, not a misread. */
  static final String FORMAT = "duet content-hash memo 1";
  private static final String FILE = "file ";
  private static final String SHA256 = "sha256 ";
  private static final String CHECK = "check ";

  /** How a lookup went. */
  public enum Outcome {
    /** No memo yet: hashed, memo written. */
    COMPUTED,
    /** The memo matched every file: not hashed. */
    REUSED,
    /** A file changed since the memo was written: hashed again, memo rewritten. */
    STALE,
    /** The memo was unreadable or failed its check: hashed again, memo rewritten. */
    DAMAGED
  }

  /** A content hash and how it was found. */
  public record Lookup(String hash, Outcome outcome) {
  }

  private ContentHashMemo() {
  }

  /**
   * The content hash of {@code files} ({@link ContentHash#sha256} of them): from the memo in
   * {@code directory} when every file is as it was hashed, else from {@code compute}, then
   * remembered. A memo that cannot be written is logged and the hash returned anyway.
   */
  public static Lookup sha256(Path directory, List<Path> files, Supplier<String> compute) {
    List<String> identities = new ArrayList<>();
    for (Path file : files) {
      identities.add(identity(file));
    }
    Path memo = directory.resolve("content-hash").resolve(key(files) + ".memo");
    Outcome outcome = Outcome.COMPUTED;
    if (Files.exists(memo)) {
      try {
        String hash = read(memo, identities);
        if (hash != null) {
          LOG.info("content hash of {} from the warm cache ({})", files, memo);
          return new Lookup(hash, Outcome.REUSED);
        }
        outcome = Outcome.STALE;
        LOG.info("warm cache {} is stale (a model file changed since it was hashed): hashing "
            + "again", memo);
      } catch (IOException | IllegalArgumentException e) {
        outcome = Outcome.DAMAGED;
        LOG.warn("warm cache {} is damaged ({}): hashing again and rewriting it", memo,
            e.getMessage());
      }
    }
    long start = System.nanoTime();
    String hash = compute.get();
    LOG.info("content hash of {} computed in {} ms; remembered in {}", files,
        TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start), memo);
    try {
      write(memo, identities, hash);
    } catch (IOException e) {
      LOG.warn("cannot write the warm cache {}: {}", memo, e.toString());
    }
    return new Lookup(hash, outcome);
  }

  /**
   * The hash the memo holds when its files are {@code identities}; null when they differ.
   *
   * @throws IllegalArgumentException when the memo is not one, or fails its check
   */
  private static String read(Path memo, List<String> identities) throws IOException {
    List<String> lines = Files.readAllLines(memo, UTF_8);
    int count = lines.size();
    if (count < 3 || !lines.get(0).equals(FORMAT) || !lines.get(count - 1).startsWith(CHECK)) {
      throw new IllegalArgumentException("not a memo of format '" + FORMAT + "'");
    }
    List<String> body = lines.subList(0, count - 1);
    if (!lines.get(count - 1).equals(CHECK + sha256(body))) {
      throw new IllegalArgumentException("its check does not match its content");
    }
    String hashLine = body.get(body.size() - 1);
    if (!hashLine.startsWith(SHA256)) {
      throw new IllegalArgumentException("no hash line");
    }
    List<String> remembered = body.subList(1, body.size() - 1).stream()
        .map(line -> line.startsWith(FILE) ? line.substring(FILE.length()) : null).toList();
    return remembered.equals(identities) ? hashLine.substring(SHA256.length()) : null;
  }

  private static void write(Path memo, List<String> identities, String hash) throws IOException {
    Files.createDirectories(memo.getParent());
    List<String> body = new ArrayList<>();
    body.add(FORMAT);
    identities.forEach(identity -> body.add(FILE + identity));
    body.add(SHA256 + hash);
    body.add(CHECK + sha256(body));
    Path temporary = Files.createTempFile(memo.getParent(), memo.getFileName().toString(),
        ".tmp");
    try {
      Files.write(temporary, body, UTF_8);
      Files.move(temporary, memo, StandardCopyOption.ATOMIC_MOVE,
          StandardCopyOption.REPLACE_EXISTING);
    } finally {
      Files.deleteIfExists(temporary);
    }
  }

  /** Size, modification time in nanoseconds, file key (device and inode) and path. */
  private static String identity(Path file) {
    try {
      Path real = file.toRealPath();
      BasicFileAttributes attributes = Files.readAttributes(real, BasicFileAttributes.class,
          LinkOption.NOFOLLOW_LINKS);
      return attributes.size() + " " + attributes.lastModifiedTime().to(TimeUnit.NANOSECONDS)
          + " " + attributes.fileKey() + " " + real;
    } catch (IOException e) {
      throw new IllegalStateException("cannot read the attributes of " + file + ": "
          + e.getMessage(), e);
    }
  }

  /** The memo's name: SHA-256 of the files' absolute paths, one a line. */
  private static String key(List<Path> files) {
    return sha256(files.stream().map(file -> file.toAbsolutePath().normalize().toString())
        .toList()).substring(0, 32);
  }

  private static String sha256(List<String> lines) {
    try {
      MessageDigest digest = MessageDigest.getInstance("SHA-256");
      lines.forEach(line -> digest.update((line + "\n").getBytes(UTF_8)));
      return HexFormat.of().formatHex(digest.digest());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("SHA-256 is a required JDK algorithm", e);
    }
  }
}
