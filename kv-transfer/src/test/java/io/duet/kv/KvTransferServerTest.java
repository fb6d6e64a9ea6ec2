package io.duet.kv;

import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.eventually;
import static io.duet.service.ServiceTests.shared;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Sequence;
import io.duet.service.ServiceTests.Engines;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Frames that reach the KV transfer server while it is sending a pull, over real TCP on
 * 127.0.0.1. A pull goes on over several event-loop turns once the socket's write queue is
 * full. Here the queue holds 1 KiB and a pull has 25 chunks (stories260K, whose context takes
 * 400 tokens): while Vert.x handles one read it holds back the writes, so the queue fills
 * partway through the pull and the server waits for a drain. Frames the client wrote in the
 * same packet as its PULL are then read while the pull is still being sent.
 *
 * <p>A reader that stops reading is a plain blocking socket that never calls read, against a
 * server whose kernel send buffer, like the client's receive buffer, holds a few KiB: the
 * kernel takes in far less than a pull's 512 KB, so the pull has to wait for a drain that does
 * not come.
 */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class KvTransferServerTest {

  private static final int PROMPT_TOKENS = 400;
  /** 16-token blocks, one chunk each. */
  private static final int BLOCKS = 25;
  /** Socket buffers of the stalled connections (the kernel doubles them). */
  private static final int SMALL_SOCKET_BUFFER = 8 << 10;

  private final Engines engines = new Engines();
  private Vertx vertx;
  private NetClient netClient;
  private Engine engine;
  private LeaseTable leases;
  private final PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(
      PrometheusConfig.DEFAULT);
  private KvTransferServer server;
  /** Bytes of a whole pull of the prompt on the wire: HEADER, every CHUNK and END, framed. */
  private long wholePullBytes;

  @BeforeEach
  void start() throws Exception {
    vertx = Vertx.vertx();
    netClient = vertx.createNetClient(new NetClientOptions().setConnectTimeout(5_000));
    engine = engines.open(new EngineOptions().modelPath(shared("stories260K.bin")).kvBlocks(64)
        .threads(1));
    leases = new LeaseTable(vertx, engine, 30_000, PullAuth.perLease(), () -> { });
    Sequence probe = prefill();
    wholePullBytes = new KvStreamWriter(engine.exportKv(probe)).totalBytes()
        + (BLOCKS + 2L) * (KvFrame.HEAD_BYTES + KvFrame.CRC_BYTES);
    engine.release(probe);
    server = new KvTransferServer(vertx, leases, metrics);
    await(server.listen("127.0.0.1", 0, new KvTransferServer.Settings(1024,
        KvTransferServer.Settings.DEFAULT_SEND_BUFFER_BYTES, 30_000, KvChannel.defaults())));
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  /** Prefills the test's prompt. */
  private Sequence prefill() {
    int[] prompt = IntStream.range(0, PROMPT_TOKENS).map(i -> 10 + (i * 7) % 400).toArray();
    Sequence sequence = engine.allocate(prompt);
    engine.step(List.of(sequence));
    return sequence;
  }

  /** Prefills the prompt and leases its KV; returns the transfer id. */
  private String lease(String requestId) {
    return leases.lease(requestId, prefill());
  }

  private int used() {
    return engine.kvStats().usedBlocks();
  }

  private static Buffer frames(KvFrame... frames) {
    Buffer bytes = Buffer.buffer();
    for (KvFrame frame : frames) {
      bytes.appendBuffer(frame.encode());
    }
    return bytes;
  }

  /**
   * Writes what {@code bytes} makes for a new connection in one packet on it; returns once the
   * server closed it.
   */
  private void sendUntilClosed(Function<KvFrameClient, Buffer> bytes) throws Exception {
    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, server.actualPort())) {
      client.sendRaw(bytes.apply(client));
      await(client.closed());
    }
  }

  /** The PULL of the lease's rightful holder, as a given connection must word it. */
  private Function<KvFrameClient, KvFrame> pull(String transferId) {
    String key = leases.pullKey(transferId);
    return client -> client.pullFrame(transferId, key);
  }

  /** {@code frame} (a PULL or RELEASE) is refused, whatever the reason, with the same answer. */
  private static void expectUnknown(KvFrameClient client, KvFrame frame) throws Exception {
    client.send(frame);
    assertEquals(KvTransferServer.UNKNOWN_TRANSFER,
        client.expect(KvFrame.Type.ERROR).payloadText());
  }

  @Test
  void aReleaseThatArrivesMidPullIsAnsweredAfterTheEndAndThenFreesTheBlocks() throws Exception {
    String transferId = lease("r1");
    Function<KvFrameClient, KvFrame> pullAgain = pull(transferId);
    assertEquals(BLOCKS, used());
    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, server.actualPort())) {
      client.sendRaw(frames(pullAgain.apply(client),
          KvFrame.text(KvFrame.Type.RELEASE, transferId)));

      client.expect(KvFrame.Type.HEADER);
      for (int i = 0; i < BLOCKS; i++) {
        client.expect(KvFrame.Type.CHUNK);
      }
      client.expect(KvFrame.Type.END);
      client.expect(KvFrame.Type.RELEASED);
      assertEquals(0, used(), "the deferred release freed the blocks before it was answered");

      // the lease is over, and the connection serves the next request
      client.send(pullAgain.apply(client));
      assertEquals(KvTransferServer.UNKNOWN_TRANSFER,
          client.expect(KvFrame.Type.ERROR).payloadText());
      String next = lease("r2");
      assertEquals(BLOCKS, client.pull(next, leases.pullKey(next)).chunks().size());
    }
  }

  @Test
  void aDeferredReleaseStillEndsTheLeaseWhenTheConnectionBreaksMidPull() throws Exception {
    String transferId = lease("r1");
    // garbage after the RELEASE makes the server close the connection in the middle of the pull
    String key = leases.pullKey(transferId);
    sendUntilClosed(client -> frames(client.pullFrame(transferId, key),
        KvFrame.text(KvFrame.Type.RELEASE, transferId))
        .appendBuffer(Buffer.buffer().appendByte((byte) 1).appendInt(-1).appendInt(0)));
    eventually("the blocks are freed at once, not when the 30 s lease expires (used "
        + used() + ")", Duration.ofSeconds(5), () -> used() == 0);
    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, server.actualPort())) {
      expectUnknown(client, client.pullFrame(transferId, key));
    }
  }

  @Test
  void aSecondPullMidPullClosesTheConnectionAndEndsTheLeaseItPulled() throws Exception {
    String transferId = lease("r1");
    String key = leases.pullKey(transferId);
    sendUntilClosed(client -> frames(client.pullFrame(transferId, key),
        client.pullFrame(transferId, key)));
    eventually("a lease is served once: the connection that pulled it closed, so it ended",
        Duration.ofSeconds(5), () -> used() == 0);
    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, server.actualPort())) {
      expectUnknown(client, client.pullFrame(transferId, key));
    }
  }

  /** A client that reads pulls the whole lease from {@code via}; its release frees the blocks. */
  private void pullWholeAndRelease(KvTransferServer via, String transferId) throws Exception {
    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, via.actualPort())) {
      assertEquals(BLOCKS, client.pull(transferId, leases.pullKey(transferId)).chunks().size());
      client.send(KvFrame.text(KvFrame.Type.RELEASE, transferId));
      client.expect(KvFrame.Type.RELEASED);
    }
    assertEquals(0, used());
  }

  /** A second server on the same leases, with small buffers and the given stall timeout. */
  private KvTransferServer stallingServer(long stallMillis) throws Exception {
    KvTransferServer stalling = new KvTransferServer(vertx, leases, metrics);
    await(stalling.listen("127.0.0.1", 0, new KvTransferServer.Settings(1024,
        SMALL_SOCKET_BUFFER, stallMillis, KvChannel.defaults())));
    return stalling;
  }

  /**
   * A blocking socket that has read the server's NONCE, sent PULL and reads only when the test
   * reads from it.
   */
  private Socket pullWithoutReading(KvTransferServer server, String transferId)
      throws IOException {
    Socket socket = new Socket();
    socket.setReceiveBufferSize(SMALL_SOCKET_BUFFER);
    socket.setSoTimeout(5_000);
    socket.connect(new InetSocketAddress("127.0.0.1", server.actualPort()), 5_000);
    byte[] nonceFrame = socket.getInputStream().readNBytes(KvFrame.HEAD_BYTES
        + PullAuth.NONCE_BYTES + KvFrame.CRC_BYTES);
    assertEquals(KvFrame.Type.NONCE.code(), nonceFrame[0]);
    byte[] nonce = Arrays.copyOfRange(nonceFrame, KvFrame.HEAD_BYTES,
        KvFrame.HEAD_BYTES + PullAuth.NONCE_BYTES);
    byte[] key = PullAuth.perLease().key(transferId, "d", leases.pullKey(transferId));
    socket.getOutputStream().write(new PullClaim(transferId, "d",
        PullAuth.proof(key, nonce, transferId)).toFrame().encode().getBytes());
    return socket;
  }

  /** Reads until the server closed the connection; returns the bytes read. */
  private static long readToTheEnd(Socket socket) throws IOException {
    InputStream in = socket.getInputStream();
    byte[] buffer = new byte[64 << 10];
    long total = 0;
    for (int n; (n = in.read(buffer)) >= 0; ) {
      total += n;
    }
    return total;
  }

  private double stalls() {
    return metrics.find(KvTransferServer.STALLS_METRIC).counter().count();
  }

  @Test
  void aReaderThatStopsReadingIsCutOffAndTheEndedLeaseFreesItsBlocks() throws Exception {
    KvTransferServer stalling = stallingServer(2_000);
    String transferId = lease("r1");
    try (Socket socket = pullWithoutReading(stalling, transferId)) {
      assertEquals(KvFrame.Type.HEADER.code(), socket.getInputStream().read(),
          "the pull has started");
      assertTrue(leases.release(transferId));
      assertEquals(BLOCKS, used(), "the stuck pull still pins the blocks of the ended lease");

      eventually("the stalled pull is cut off and lets go of the blocks", Duration.ofSeconds(10),
          () -> used() == 0);
      assertEquals(1, stalls());
      assertTrue(metrics.scrape().contains(KvTransferServer.STALLS_METRIC + " 1.0"),
          metrics.scrape());
      assertTrue(readToTheEnd(socket) < wholePullBytes, "the server closed the connection before the "
          + "end of the pull");
    }
    assertFalse(leases.holdsBlocks());
  }

  @Test
  void aStalledPullOfALiveLeaseEndsTheLeaseSinceItIsServedOnce() throws Exception {
    KvTransferServer stalling = stallingServer(300);
    String transferId = lease("r1");
    String key = leases.pullKey(transferId);
    try (Socket socket = pullWithoutReading(stalling, transferId)) {
      eventually("the stall is detected", Duration.ofSeconds(10), () -> stalls() == 1);
      assertTrue(readToTheEnd(socket) < wholePullBytes);
    }
    eventually("the lease ended with its connection and freed its blocks",
        Duration.ofSeconds(5), () -> used() == 0);
    try (KvFrameClient client = KvFrameClient.connect(vertx, netClient, stalling.actualPort())) {
      expectUnknown(client, client.pullFrame(transferId, key));
    }
  }

  /**
   * The one deliberate wait of these tests: a slow reader is time passing, and what is under
   * test is that the server tells pauses shorter than its stall timeout from a stall. Each pause
   * is a quarter of the timeout, so a descheduled thread does not make it a stall; the pull as a
   * whole must outlast the timeout, or the test would not tell the two apart.
   */
  @Test
  void aSlowReaderIsNotCutOffWhileEachPauseIsShorterThanTheStallTimeout() throws Exception {
    KvTransferServer stalling = stallingServer(1_000);
    String transferId = lease("r1");
    long start = System.nanoTime();
    try (Socket socket = pullWithoutReading(stalling, transferId)) {
      InputStream in = socket.getInputStream();
      byte[] buffer = new byte[64 << 10];
      long read = 0;
      while (read < wholePullBytes) {
        Thread.sleep(250); // the reader's pause: the server waits for a drain meanwhile
        long target = Math.min(wholePullBytes, read + buffer.length);
        while (read < target) {
          int n = in.read(buffer, 0, (int) (target - read));
          assertTrue(n > 0, "the server closed the connection after " + read + " bytes");
          read += n;
        }
      }
    }
    assertTrue(System.nanoTime() - start > TimeUnit.MILLISECONDS.toNanos(1_000),
        "the whole pull took longer than the stall timeout");
    assertEquals(0, stalls(), "each wait was shorter than the stall timeout");
    eventually("the lease ended with the connection that pulled it", Duration.ofSeconds(5),
        () -> used() == 0);
  }
}
