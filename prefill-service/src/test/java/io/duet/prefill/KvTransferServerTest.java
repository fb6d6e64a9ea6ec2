package io.duet.prefill;

import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.eventually;
import static io.duet.service.ServiceTests.shared;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.transfer.KvFrame;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Sequence;
import io.duet.prefill.impl.KvTransferServer;
import io.duet.prefill.impl.LeaseTable;
import io.duet.service.ServiceTests.Engines;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
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
 */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class KvTransferServerTest {

  private static final int PROMPT_TOKENS = 400;
  /** 16-token blocks, one chunk each. */
  private static final int BLOCKS = 25;

  private final Engines engines = new Engines();
  private Vertx vertx;
  private NetClient netClient;
  private Engine engine;
  private LeaseTable leases;
  private KvTransferServer server;

  @BeforeEach
  void start() throws Exception {
    vertx = Vertx.vertx();
    netClient = vertx.createNetClient(new NetClientOptions().setConnectTimeout(5_000));
    engine = engines.open(new EngineOptions().modelPath(shared("stories260K.bin")).kvBlocks(64)
        .threads(1));
    leases = new LeaseTable(vertx, engine, 30_000, () -> { });
    server = new KvTransferServer(vertx, leases);
    await(server.listen("127.0.0.1", 0, 1024));
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  /** Prefills a prompt and leases its KV; returns the transfer id. */
  private String lease(String requestId) {
    int[] prompt = IntStream.range(0, PROMPT_TOKENS).map(i -> 10 + (i * 7) % 400).toArray();
    Sequence sequence = engine.allocate(prompt);
    engine.step(List.of(sequence));
    return leases.lease(requestId, sequence);
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

  /** Writes {@code bytes} in one packet on a new connection; returns once the server closed it. */
  private void sendUntilClosed(Buffer bytes) throws Exception {
    try (KvFrameClient client = KvFrameClient.connect(netClient, server.actualPort())) {
      client.sendRaw(bytes);
      await(client.closed());
    }
  }

  private static void expectUnknown(KvFrameClient client, String transferId) throws Exception {
    client.send(KvFrame.text(KvFrame.Type.PULL, transferId));
    String error = client.expect(KvFrame.Type.ERROR).payloadText();
    assertTrue(error.startsWith("UNKNOWN_TRANSFER"), error);
  }

  @Test
  void aReleaseThatArrivesMidPullIsAnsweredAfterTheEndAndThenFreesTheBlocks() throws Exception {
    String transferId = lease("r1");
    assertEquals(BLOCKS, used());
    try (KvFrameClient client = KvFrameClient.connect(netClient, server.actualPort())) {
      client.sendRaw(frames(KvFrame.text(KvFrame.Type.PULL, transferId),
          KvFrame.text(KvFrame.Type.RELEASE, transferId)));

      client.expect(KvFrame.Type.HEADER);
      for (int i = 0; i < BLOCKS; i++) {
        client.expect(KvFrame.Type.CHUNK);
      }
      client.expect(KvFrame.Type.END);
      client.expect(KvFrame.Type.RELEASED);
      assertEquals(0, used(), "the deferred release freed the blocks before it was answered");

      // the lease is over, and the connection serves the next request
      expectUnknown(client, transferId);
    }
  }

  @Test
  void aDeferredReleaseStillEndsTheLeaseWhenTheConnectionBreaksMidPull() throws Exception {
    String transferId = lease("r1");
    // garbage after the RELEASE makes the server close the connection in the middle of the pull
    sendUntilClosed(frames(KvFrame.text(KvFrame.Type.PULL, transferId),
        KvFrame.text(KvFrame.Type.RELEASE, transferId))
        .appendBuffer(Buffer.buffer().appendByte((byte) 1).appendInt(-1).appendInt(0)));
    eventually("the blocks are freed at once, not when the 30 s lease expires (used "
        + used() + ")", Duration.ofSeconds(5), () -> used() == 0);
    try (KvFrameClient client = KvFrameClient.connect(netClient, server.actualPort())) {
      expectUnknown(client, transferId);
    }
  }

  @Test
  void aSecondPullMidPullClosesTheConnectionAndTheLeaseCanStillBePulled() throws Exception {
    String transferId = lease("r1");
    sendUntilClosed(frames(KvFrame.text(KvFrame.Type.PULL, transferId),
        KvFrame.text(KvFrame.Type.PULL, transferId)));
    assertEquals(BLOCKS, used(), "the lease outlives the broken connection");
    try (KvFrameClient client = KvFrameClient.connect(netClient, server.actualPort())) {
      assertEquals(BLOCKS, client.pull(transferId).chunks().size());
      client.send(KvFrame.text(KvFrame.Type.RELEASE, transferId));
      client.expect(KvFrame.Type.RELEASED);
      assertEquals(0, used());
    }
  }
}
