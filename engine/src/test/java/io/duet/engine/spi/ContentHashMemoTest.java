package io.duet.engine.spi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.Engines;
import io.duet.engine.spi.ContentHashMemo.Lookup;
import io.duet.engine.spi.ContentHashMemo.Outcome;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The warm cache of content hashes: a restart reuses the hash without reading the files; a file
 * changed since (content, size or only its time) and a memo damaged in any way are detected and
 * hashed again, never used; the engine's KV layout is the same through the cache as without it.
 */
class ContentHashMemoTest {

  @TempDir
  Path dir;

  private Path cache;
  private List<Path> files;
  private final AtomicInteger hashings = new AtomicInteger();

  @BeforeEach
  void twoModelFiles() throws IOException {
    cache = dir.resolve("cache");
    files = List.of(Files.write(dir.resolve("config.json"), "{\"layers\": 2}".getBytes()),
        Files.write(dir.resolve("model.safetensors"), new byte[] {1, 2, 3, 4, 5, 6, 7, 8}));
  }

  @Test
  void aRestartReusesTheHashWithoutReadingTheFiles() {
    Lookup cold = lookup();
    assertEquals(new Lookup(ContentHash.sha256(files), Outcome.COMPUTED), cold);
    assertEquals(1, hashings.get());
    assertEquals(new Lookup(cold.hash(), Outcome.REUSED), lookup());
    assertEquals(1, hashings.get(), "a reused hash reads no file");
  }

  @Test
  void aChangedFileMakesTheMemoStale() throws IOException {
    lookup();
    // the same size, another content: only the modification time tells
    Files.write(files.get(1), new byte[] {8, 7, 6, 5, 4, 3, 2, 1});
    Files.setLastModifiedTime(files.get(1), FileTime.fromMillis(
        Files.getLastModifiedTime(files.get(1)).toMillis() + 2_000));
    Lookup stale = lookup();
    assertEquals(new Lookup(ContentHash.sha256(files), Outcome.STALE), stale);
    assertEquals(new Lookup(stale.hash(), Outcome.REUSED), lookup());
  }

  @Test
  void aFileReplacedByAnotherIsStaleEvenWithItsSizeAndTime() throws IOException {
    lookup();
    FileTime time = Files.getLastModifiedTime(files.get(1));
    Path other = Files.write(dir.resolve("other"), new byte[] {9, 9, 9, 9, 9, 9, 9, 9});
    Files.setLastModifiedTime(other, time);
    Files.move(other, files.get(1), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    assertEquals(new Lookup(ContentHash.sha256(files), Outcome.STALE), lookup());
  }

  @Test
  void aDamagedMemoIsRebuiltNeverUsed() throws IOException {
    String hash = lookup().hash();
    Path memo = memo();
    String text = Files.readString(memo);
    // a forged hash: the line parses, the check does not match
    Files.writeString(memo, text.replace("sha256 " + hash, "sha256 " + "0".repeat(64)));
    assertEquals(new Lookup(hash, Outcome.DAMAGED), lookup());
    assertEquals(new Lookup(hash, Outcome.REUSED), lookup(), "rebuilt");

    Files.write(memo, new byte[0], StandardOpenOption.TRUNCATE_EXISTING);
    assertEquals(new Lookup(hash, Outcome.DAMAGED), lookup(), "an empty memo");
    Files.writeString(memo, text.substring(0, text.length() / 2));
    assertEquals(new Lookup(hash, Outcome.DAMAGED), lookup(), "half a memo");
    Files.write(memo, new byte[] {(byte) 0xff, (byte) 0xfe, 0, 1});
    assertEquals(new Lookup(hash, Outcome.DAMAGED), lookup(), "bytes that are not text");
    assertEquals(new Lookup(hash, Outcome.REUSED), lookup());
  }

  @Test
  void theEnginesLayoutIsTheSameThroughTheCache() throws IOException {
    String without;
    try (Engine engine = Engine.open(Engines.aidreamsOptions())) {
      without = engine.layout().fingerprint();
    }
    for (int start = 0; start < 2; start++) {
      try (Engine engine = Engine.open(Engines.aidreamsOptions().warmCache(cache))) {
        assertEquals(without, engine.layout().fingerprint(), "start " + start);
      }
    }
    assertTrue(Files.exists(memo()), "the engine kept the hash");
  }

  private Lookup lookup() {
    Supplier<String> compute = () -> {
      hashings.incrementAndGet();
      return ContentHash.sha256(files);
    };
    return ContentHashMemo.sha256(cache, files, compute);
  }

  /** The one memo in the cache. */
  private Path memo() throws IOException {
    try (Stream<Path> memos = Files.list(cache.resolve("content-hash"))) {
      List<Path> all = memos.toList();
      assertEquals(1, all.size(), all::toString);
      return all.get(0);
    }
  }
}
