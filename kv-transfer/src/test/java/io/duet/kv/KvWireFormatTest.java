package io.duet.kv;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.KvCacheFullException;
import io.duet.engine.KvTransferException;
import io.duet.engine.Sampler;
import io.duet.engine.Sequence;
import io.duet.service.ServiceTests;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Damaged or foreign KV streams are refused with an exception naming the cause, and the
 * receiving engine holds no block afterwards. Chunks are imported from byte arrays and, as the
 * decode service does, in place from the direct buffers they arrived in.
 */
class KvWireFormatTest {

  private Engine sender;
  private Engine receiver;
  private Sequence prefilled;
  private byte[] wire;

  @BeforeEach
  void prefill() throws IOException {
    sender = Engine.open(aidreams());
    receiver = Engine.open(aidreams());
    prefilled = sender.allocate(sender.tokenizer().encode(
        "Once upon a time, pixels unfolding like petals and a kaleidoscope", true));
    sender.step(List.of(prefilled));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    new KvStreamWriter(sender.exportKv(prefilled)).writeTo(out);
    wire = out.toByteArray();
  }

  private static EngineOptions aidreams() {
    return ServiceTests.aidreams(256).maxSequences(16).maxBatchTokens(256);
  }

  @AfterEach
  void close() {
    sender.close();
    receiver.close();
  }

  private KvTransferException refused(byte[] bytes) {
    KvTransferException e = assertThrows(KvTransferException.class,
        () -> KvStreamReader.read(receiver, new ByteArrayInputStream(bytes)));
    assertEquals(0, receiver.kvStats().usedBlocks(), "blocks left allocated after " + e);
    return e;
  }

  /**
   * {@code chunk} in direct buffers as network reads might cut it: pieces of 1, 0, 3, 4097, 6
   * and 2 bytes over and over, so that some of its integers and floats span two pieces.
   */
  private static ByteBuffer[] pieces(byte[] chunk) {
    ByteBuffer direct = ByteBuffer.allocateDirect(chunk.length).put(chunk).flip();
    int[] sizes = {1, 0, 3, 4097, 6, 2};
    List<ByteBuffer> pieces = new ArrayList<>();
    for (int at = 0, i = 0; at < chunk.length; i++) {
      int size = Math.min(sizes[i % sizes.length], chunk.length - at);
      pieces.add(direct.slice(at, size));
      at += size;
    }
    return pieces.toArray(ByteBuffer[]::new);
  }

  /** A receiver's import whose first chunks were accepted from pieces. */
  private KvStreamReader importedUpTo(KvStreamWriter export, int chunks) {
    KvStreamReader kvImport = KvStreamReader.begin(receiver, export.header());
    for (int i = 0; i < chunks; i++) {
      kvImport.acceptChunk(pieces(export.chunk(i)));
    }
    return kvImport;
  }

  @Test
  void intactStreamImportsEveryTokenAndTheLogitsMatch() throws IOException {
    KvStreamWriter export = new KvStreamWriter(sender.exportKv(prefilled));
    assertEquals(wire.length, export.totalBytes());
    assertContinuesLikeTheSender(KvStreamReader.read(receiver, new ByteArrayInputStream(wire)));
  }

  @Test
  void chunksReadInPlaceFromSplitDirectBuffersImportTheSameKv() {
    KvStreamWriter export = new KvStreamWriter(sender.exportKv(prefilled));
    assertTrue(export.chunkCount() > 1);
    ByteBuffer[] first = pieces(export.chunk(0));
    KvStreamReader kvImport = KvStreamReader.begin(receiver, export.header());
    kvImport.acceptChunk(first);
    assertEquals(0, first[3].position(), "the pieces are read, not consumed");
    for (int i = 1; i < export.chunkCount(); i++) {
      kvImport.acceptChunk(pieces(export.chunk(i)));
    }
    assertContinuesLikeTheSender(kvImport.finish());
  }

  @Test
  void aCorruptedChunkInSplitBuffersIsRefusedAndFreesTheBlocks() {
    KvStreamWriter export = new KvStreamWriter(sender.exportKv(prefilled));
    KvStreamReader kvImport = importedUpTo(export, 1);
    byte[] damaged = export.chunk(1);
    damaged[damaged.length / 2] ^= 0x10;
    KvTransferException e = assertThrows(KvTransferException.class,
        () -> kvImport.acceptChunk(pieces(damaged)));
    assertEquals(KvTransferException.Reason.CORRUPTED, e.reason());
    assertTrue(e.getMessage().contains("chunk 1"), e.getMessage());
    assertEquals(0, receiver.kvStats().usedBlocks());
  }

  @Test
  void aChunkCutShortInSplitBuffersIsRefusedAsTruncated() {
    KvStreamWriter export = new KvStreamWriter(sender.exportKv(prefilled));
    KvStreamReader kvImport = importedUpTo(export, 1);
    byte[] chunk = export.chunk(1);
    KvTransferException e = assertThrows(KvTransferException.class,
        () -> kvImport.acceptChunk(pieces(Arrays.copyOf(chunk, chunk.length - 2))));
    assertEquals(KvTransferException.Reason.TRUNCATED, e.reason());
    assertEquals(0, receiver.kvStats().usedBlocks());
  }

  /** The imported sequence's next step gives the sender's logits, bit for bit. */
  private void assertContinuesLikeTheSender(Sequence imported) {
    assertEquals(prefilled.length(), imported.computedTokens());
    int next = Sampler.argmax(prefilled.logits());
    sender.append(prefilled, next);
    receiver.append(imported, next);
    sender.step(List.of(prefilled));
    receiver.step(List.of(imported));
    assertTrue(Arrays.equals(prefilled.logits(), imported.logits()));
  }

  @Test
  void truncatedStreamIsRefused() {
    KvTransferException e = refused(Arrays.copyOf(wire, wire.length - 100));
    assertEquals(KvTransferException.Reason.TRUNCATED, e.reason());
    assertTrue(e.getMessage().contains("stream ended"), e.getMessage());
  }

  @Test
  void corruptedChunkIsRefused() {
    byte[] damaged = wire.clone();
    damaged[damaged.length - 200] ^= 0x10;
    KvTransferException e = refused(damaged);
    assertEquals(KvTransferException.Reason.CORRUPTED, e.reason());
    assertTrue(e.getMessage().contains("CRC32C"), e.getMessage());
  }

  @Test
  void corruptedHeaderIsRefused() {
    byte[] damaged = wire.clone();
    damaged[KvWireFormat.HEADER_PREFIX_BYTES + 3] ^= 0x01;
    assertEquals(KvTransferException.Reason.CORRUPTED, refused(damaged).reason());
  }

  @Test
  void garbageIsRefusedAsMalformed() {
    byte[] garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes();
    assertEquals(KvTransferException.Reason.MALFORMED, refused(garbage).reason());
  }

  @Test
  void otherWeightsOfTheSameShapeAreRefusedByFingerprint(@TempDir Path dir) throws IOException {
    byte[] model = Files.readAllBytes(ServiceTests.shared("aidreams260K.bin"));
    model[model.length / 2] ^= 0x01;
    Path other = Files.write(dir.resolve("other.bin"), model);
    try (Engine foreign = Engine.open(aidreams().modelPath(other))) {
      KvTransferException e = assertThrows(KvTransferException.class,
          () -> KvStreamReader.read(foreign, new ByteArrayInputStream(wire)));
      assertEquals(KvTransferException.Reason.FINGERPRINT_MISMATCH, e.reason());
      assertTrue(e.getMessage().contains("model hash"), e.getMessage());
      assertEquals(0, foreign.kvStats().usedBlocks());
    }
  }

  @Test
  void otherBlockSizeIsRefusedByFingerprint() throws IOException {
    try (Engine other = Engine.open(aidreams().blockSize(8))) {
      KvTransferException e = assertThrows(KvTransferException.class,
          () -> KvStreamReader.read(other, new ByteArrayInputStream(wire)));
      assertEquals(KvTransferException.Reason.FINGERPRINT_MISMATCH, e.reason());
      assertTrue(e.getMessage().contains("block size"), e.getMessage());
    }
  }

  @Test
  void receiverWithoutRoomAllocatesNothing() throws IOException {
    try (Engine small = Engine.open(aidreams().kvBlocks(1))) {
      assertThrows(KvCacheFullException.class,
          () -> KvStreamReader.read(small, new ByteArrayInputStream(wire)));
      assertEquals(0, small.kvStats().usedBlocks());
    }
  }

  @Test
  void chunksOutOfOrderAreRefusedAndAbortFreesTheBlocks() {
    KvStreamWriter export = new KvStreamWriter(sender.exportKv(prefilled));
    KvStreamReader kvImport = KvStreamReader.begin(receiver, export.header());
    assertTrue(receiver.kvStats().usedBlocks() > 0);
    KvTransferException e = assertThrows(KvTransferException.class,
        () -> kvImport.acceptChunk(ByteBuffer.wrap(export.chunk(1))));
    assertEquals(KvTransferException.Reason.MALFORMED, e.reason());
    assertEquals(0, receiver.kvStats().usedBlocks());

    KvStreamReader abandoned = KvStreamReader.begin(receiver, export.header());
    abandoned.acceptChunk(ByteBuffer.wrap(export.chunk(0)));
    abandoned.abort();
    assertEquals(0, receiver.kvStats().usedBlocks());
  }
}
