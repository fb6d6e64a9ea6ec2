package io.duet.engine.llama;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.ModelFormatException;
import io.duet.engine.TestCheckpoints;
import io.duet.engine.TestFiles;
import io.duet.engine.compute.WeightMatrix;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.Random;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class LlamaWeightsTest {

  @TempDir Path dir;

  // ------------------------------------------------------------------------ real checkpoints

  @Test
  void loadsAidreams260K() throws IOException {
    Path path = TestFiles.shared("models/aidreams260K.bin");
    LlamaWeights model = LlamaWeights.load(path);
    // README: 64, 172, 4, 4, 4, 512, 128; the header's vocab_size is +512: shared classifier.
    assertEquals(new LlamaConfig(64, 172, 4, 4, 4, 512, 128, true), model.config());
    assertEquals(Files.size(path), model.fileSize());
    assertEquals(path, model.path());
    assertSame(model.tokenEmbedding(), model.classifier(), "a shared classifier is the embedding");
    assertShapes(model);
  }

  @Test
  void loadsStories260K() throws IOException {
    Path path = TestFiles.shared("models/stories260K.bin");
    assertEquals(512, headerInt(path, 5), "the header's vocab_size is positive: shared classifier");
    LlamaWeights model = LlamaWeights.load(path);
    // README: 64, 172, 5, 8, 4, 512, 512 (grouped-query attention: 8 heads share 4 kv heads).
    assertEquals(new LlamaConfig(64, 172, 5, 8, 4, 512, 512, true), model.config());
    assertEquals(8, model.config().headSize());
    assertEquals(32, model.config().kvDim());
    assertSame(model.tokenEmbedding(), model.classifier());
    assertShapes(model);
  }

  private static void assertShapes(LlamaWeights model) {
    LlamaConfig c = model.config();
    assertMatrix(model.tokenEmbedding(), c.vocabSize(), c.dim());
    assertMatrix(model.classifier(), c.vocabSize(), c.dim());
    for (int i = 0; i < c.layers(); i++) {
      LlamaWeights.Layer layer = model.layer(i);
      assertEquals(c.dim(), layer.attentionNorm().length);
      assertEquals(c.dim(), layer.ffnNorm().length);
      assertMatrix(layer.wq(), c.dim(), c.dim());
      assertMatrix(layer.wk(), c.kvDim(), c.dim());
      assertMatrix(layer.wv(), c.kvDim(), c.dim());
      assertMatrix(layer.wo(), c.dim(), c.dim());
      assertMatrix(layer.w1(), c.hiddenDim(), c.dim());
      assertMatrix(layer.w2(), c.dim(), c.hiddenDim());
      assertMatrix(layer.w3(), c.hiddenDim(), c.dim());
    }
    assertEquals(c.dim(), model.finalNorm().length);
  }

  private static void assertMatrix(WeightMatrix m, int rows, int cols) {
    assertEquals(rows, m.rows());
    assertEquals(cols, m.cols());
  }

  @Test
  void loadingIsFastAndLeavesTheWeightsOffTheHeap() throws IOException {
    Path path = TestFiles.shared("models/stories260K.bin");
    long start = System.nanoTime();
    LlamaWeights model = LlamaWeights.load(path);
    long millis = (System.nanoTime() - start) / 1_000_000;
    assertTrue(millis < 1000, "loading took " + millis + " ms");
    // fast because nothing is read but the header: the tensors are views of the mapped file
    // (isDirect alone would also hold for weights copied off the heap)
    assertEquals("mapped from the file", model.storageDescription());
    assertTrue(model.classifier().data().isDirect(), "the classifier should be file-mapped");
    assertTrue(model.tokenEmbedding().data().isDirect());
    assertTrue(model.layer(0).w1().data().isDirect());
  }

  @Test
  void theTensorsAreReadFromTheRightOffsets() throws IOException {
    Path path = TestFiles.shared("models/aidreams260K.bin");
    LlamaWeights model = LlamaWeights.load(path);
    LlamaConfig c = model.config();
    ByteBuffer file = ByteBuffer.wrap(Files.readAllBytes(path)).order(ByteOrder.LITTLE_ENDIAN);
    long embedding = 28;
    long attNorm = embedding + (long) c.vocabSize() * c.dim() * 4;
    long wq = attNorm + (long) c.layers() * c.dim() * 4;
    assertEquals(file.getFloat((int) embedding), model.tokenEmbedding().get(0, 0));
    assertEquals(file.getFloat((int) (embedding + (3L * c.dim() + 5) * 4)),
        model.tokenEmbedding().get(3, 5));
    assertEquals(file.getFloat((int) (attNorm + (c.dim() + 1) * 4L)),
        model.layer(1).attentionNorm()[1]);
    assertEquals(file.getFloat((int) wq), model.layer(0).wq().get(0, 0));
    long finalNorm = Llama2cCheckpoint.fileSize(c) - 4L * (c.dim() + (long) c.seqLen() * c.headSize());
    assertEquals(file.getFloat((int) finalNorm), model.finalNorm()[0]);
  }

  // ----------------------------------------------------------------------- TestCheckpoints

  @Test
  void acceptsWhatTestCheckpointsWrites() throws IOException {
    Path unshared = TestCheckpoints.write(dir.resolve("unshared.bin"), 16, 40, 2, 4, 2, 32, 16,
        false, 1);
    LlamaWeights model = LlamaWeights.load(unshared);
    LlamaConfig c = new LlamaConfig(16, 40, 2, 4, 2, 32, 16, false);
    assertEquals(c, model.config());
    assertEquals(Llama2cCheckpoint.fileSize(c), Files.size(unshared));
    assertEquals(-32, headerInt(unshared, 5), "an unshared classifier negates vocab_size");
    assertNotSame(model.tokenEmbedding(), model.classifier());

    // Norms are ones; every matrix is within ±0.5/sqrt(fan_in) of its own fan-in (w2's rows are
    // hidden wide, so a tensor read from the wrong place would very likely break the bound).
    for (int i = 0; i < c.layers(); i++) {
      LlamaWeights.Layer layer = model.layer(i);
      assertAllOnes(layer.attentionNorm());
      assertAllOnes(layer.ffnNorm());
      for (WeightMatrix m : layer.matrices()) {
        assertUniformWithinFanInBound(m);
      }
    }
    assertAllOnes(model.finalNorm());
    assertUniformWithinFanInBound(model.tokenEmbedding());
    assertUniformWithinFanInBound(model.classifier());

    // The first weight is the first draw of Random(seed).
    float bound = (float) (0.5 / Math.sqrt(16));
    assertEquals((new Random(1).nextFloat() * 2f - 1f) * bound, model.tokenEmbedding().get(0, 0));

    Path shared = TestCheckpoints.write(dir.resolve("shared.bin"), 16, 40, 2, 4, 2, 32, 16, true,
        1);
    LlamaWeights sharedModel = LlamaWeights.load(shared);
    assertEquals(new LlamaConfig(16, 40, 2, 4, 2, 32, 16, true), sharedModel.config());
    assertSame(sharedModel.tokenEmbedding(), sharedModel.classifier());
  }

  /**
   * A model whose matrices all fit in {@link WeightMatrix#CACHE_RESIDENT_MODEL_BYTES} has them
   * all marked cache-resident; one a little larger has none.
   */
  @Test
  void theMatricesOfAModelThatFitsInTheCachesAreMarkedCacheResident() throws IOException {
    LlamaWeights small = LlamaWeights.load(TestFiles.shared("models/stories260K.bin"));
    assertTrue(allMatrices(small).allMatch(WeightMatrix::isCacheResident));
    assertSame(small.tokenEmbedding(), small.classifier(), "still one shared matrix");

    // 4 layers of 640 KB (4 matrices of 128 x 128 floats, 3 of 128 x 256) and an embedding and
    // a classifier of 2048 x 128 (1 MB each): 4.5 MB.
    Path larger = TestCheckpoints.write(dir.resolve("larger.bin"), 128, 256, 4, 4, 4, 2048, 16,
        false, 1);
    LlamaWeights model = LlamaWeights.load(larger);
    assertTrue(allMatrices(model).mapToLong(WeightMatrix::bytes).sum()
        > WeightMatrix.CACHE_RESIDENT_MODEL_BYTES);
    assertTrue(allMatrices(model).noneMatch(WeightMatrix::isCacheResident));
  }

  private static Stream<WeightMatrix> allMatrices(LlamaWeights model) {
    return Stream.concat(Stream.of(model.tokenEmbedding(), model.classifier()),
        IntStream.range(0, model.config().layers()).mapToObj(model::layer)
            .flatMap(layer -> layer.matrices().stream()));
  }

  @Test
  void testCheckpointsAreDeterministicInTheSeed() throws IOException {
    Path a = TestCheckpoints.write(dir.resolve("a.bin"), 8, 24, 1, 2, 1, 16, 8, true, 5);
    Path b = TestCheckpoints.write(dir.resolve("b.bin"), 8, 24, 1, 2, 1, 16, 8, true, 5);
    Path c = TestCheckpoints.write(dir.resolve("c.bin"), 8, 24, 1, 2, 1, 16, 8, true, 6);
    assertArrayEquals(Files.readAllBytes(a), Files.readAllBytes(b));
    assertFalse(Arrays.equals(Files.readAllBytes(a), Files.readAllBytes(c)));
  }

  private static void assertAllOnes(float[] values) {
    for (float v : values) {
      assertEquals(1f, v);
    }
  }

  private static void assertUniformWithinFanInBound(WeightMatrix m) {
    float bound = (float) (0.5 / Math.sqrt(m.cols()));
    float largest = 0;
    for (int r = 0; r < m.rows(); r++) {
      for (int k = 0; k < m.cols(); k++) {
        largest = Math.max(largest, Math.abs(m.get(r, k)));
      }
    }
    assertTrue(largest <= bound, "weight " + largest + " exceeds ±" + bound);
    assertTrue(largest > 0.8f * bound, "weights should fill ±" + bound + ", largest " + largest);
  }

  // ------------------------------------------------------------------------------ bad files

  private ModelFormatException loadFails(Path path) {
    ModelFormatException e = assertThrows(ModelFormatException.class, () -> LlamaWeights.load(path));
    assertTrue(e.getMessage().contains(path.getFileName().toString()),
        "the message should name the file: " + e.getMessage());
    return e;
  }

  private static void assertMentions(Exception e, String... words) {
    for (String word : words) {
      assertTrue(e.getMessage().contains(word),
          "message should mention '" + word + "': " + e.getMessage());
    }
  }

  /** A file holding just a header. */
  private Path header(String name, int... values) throws IOException {
    ByteBuffer buffer = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int v : values) {
      buffer.putInt(v);
    }
    Path path = dir.resolve(name);
    Files.write(path, buffer.array());
    return path;
  }

  @Test
  void rejectsAnEmptyFile() throws IOException {
    Path path = dir.resolve("empty.bin");
    Files.write(path, new byte[0]);
    assertMentions(loadFails(path), "0 bytes", "too short");
  }

  @Test
  void rejectsATenByteFile() throws IOException {
    Path path = dir.resolve("ten.bin");
    Files.write(path, new byte[10]);
    assertMentions(loadFails(path), "10 bytes", "too short");
  }

  @Test
  void rejectsZeroDimensions() throws IOException {
    assertMentions(loadFails(header("zero-dim.bin", 0, 172, 4, 4, 4, 512, 128)), "positive");
    assertMentions(loadFails(header("zero-layers.bin", 64, 172, 0, 4, 4, 512, 128)), "positive");
    assertMentions(loadFails(header("zero-vocab.bin", 64, 172, 4, 4, 4, 0, 128)), "positive");
    assertMentions(loadFails(header("all-zero.bin", 0, 0, 0, 0, 0, 0, 0)), "positive");
  }

  @Test
  void rejectsNegativeDimensions() throws IOException {
    assertMentions(loadFails(header("negative-hidden.bin", 64, -172, 4, 4, 4, 512, 128)),
        "positive");
    assertMentions(loadFails(header("negative-heads.bin", 64, 172, 4, -4, -4, 512, 128)),
        "positive");
    assertMentions(loadFails(header("negative-seq.bin", 64, 172, 4, 4, 4, 512, -1)), "positive");
    assertMentions(loadFails(header("min-vocab.bin", 64, 172, 4, 4, 4, Integer.MIN_VALUE, 128)),
        "positive");
  }

  @Test
  void rejectsHeadsThatDoNotDivideDim() throws IOException {
    assertMentions(loadFails(header("heads.bin", 64, 172, 4, 5, 5, 512, 128)),
        "dim is not a multiple of n_heads");
  }

  @Test
  void rejectsKvHeadsThatDoNotDivideHeads() throws IOException {
    assertMentions(loadFails(header("kv-heads.bin", 64, 172, 4, 8, 3, 512, 128)),
        "n_heads is not a multiple of n_kv_heads");
    assertMentions(loadFails(header("more-kv-heads.bin", 64, 172, 4, 4, 8, 512, 128)),
        "n_heads is not a multiple of n_kv_heads");
  }

  @Test
  void rejectsAnOddHeadSize() throws IOException {
    assertMentions(loadFails(header("odd-head.bin", 12, 32, 1, 4, 4, 16, 8)), "odd");
  }

  @Test
  void rejectsImplausiblyLargeDimensions() throws IOException {
    assertMentions(loadFails(header("huge.bin", 1 << 20, 172, 4, 4, 4, 512, 128)),
        "implausibly large");
  }

  @Test
  void rejectsAFileOneFloatTooShort() throws IOException {
    Path path = TestCheckpoints.write(dir.resolve("short.bin"), 16, 40, 2, 4, 2, 32, 16, false, 3);
    long size = Files.size(path);
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.WRITE)) {
      channel.truncate(size - Float.BYTES);
    }
    assertMentions(loadFails(path), "truncated", String.valueOf(size - Float.BYTES),
        String.valueOf(size));
  }

  @Test
  void rejectsAHeaderWithoutTensors() throws IOException {
    assertMentions(loadFails(header("header-only.bin", 64, 172, 4, 4, 4, 512, 128)), "truncated");
  }

  @Test
  void rejectsAFileWithExtraBytes() throws IOException {
    Path path = TestCheckpoints.write(dir.resolve("long.bin"), 16, 40, 2, 4, 2, 32, 16, true, 3);
    long size = Files.size(path);
    Files.write(path, new byte[] {1, 2, 3}, StandardOpenOption.APPEND);
    assertMentions(loadFails(path), "trailing data", String.valueOf(size + 3),
        String.valueOf(size));
  }

  @Test
  void rejectsASharedHeaderOnAnUnsharedFile() throws IOException {
    // The classifier is there but the header says it is shared: the size cannot match.
    Path path = TestCheckpoints.write(dir.resolve("flag.bin"), 16, 40, 2, 4, 2, 32, 16, false, 3);
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.WRITE)) {
      ByteBuffer vocab = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(32).flip();
      channel.write(vocab, 5 * 4);
    }
    assertMentions(loadFails(path), "trailing data");
  }

  @Test
  void rejectsTheNewerLlama2cExportFormat() throws IOException {
    // llama2.c export.py version 1: magic "ak42", version, then a 256-byte padded header.
    ByteBuffer buffer = ByteBuffer.allocate(256 + 64).order(ByteOrder.LITTLE_ENDIAN);
    buffer.putInt(0x616b3432).putInt(1).putInt(64).putInt(172).putInt(4).putInt(4).putInt(4)
        .putInt(512).putInt(128);
    Path path = dir.resolve("v1.bin");
    Files.write(path, buffer.array());
    assertMentions(loadFails(path), "ak42");
  }

  @Test
  void aMissingFileIsAnIoErrorButNotAFormatError() {
    Path path = dir.resolve("does-not-exist.bin");
    IOException e = assertThrows(IOException.class, () -> LlamaWeights.load(path));
    assertFalse(e instanceof ModelFormatException, e.toString());
  }

  private static int headerInt(Path path, int index) throws IOException {
    try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
      ByteBuffer buffer = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
      channel.read(buffer, index * 4L);
      return buffer.getInt(0);
    }
  }
}
