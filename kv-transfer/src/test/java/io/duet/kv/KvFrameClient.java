package io.duet.kv;

import static io.duet.service.ServiceTests.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.fail;

import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetSocket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A raw KV-protocol client for tests: one TCP connection to a prefill instance's KV port, the
 * frames it receives queued for the test thread to take with a bounded wait. It claims leases
 * as decode instance {@value #CLAIMANT} with per-lease keys, and takes the server's NONCE as
 * soon as it connects.
 */
public final class KvFrameClient implements AutoCloseable {

  public static final String CLAIMANT = "test-decode";
  /** Put into the inbox when the server closed the connection. */
  private static final Object CLOSED = new Object();

  private final NetSocket socket;
  private final BlockingQueue<Object> inbox = new LinkedBlockingQueue<>();
  private final Promise<Void> closed = Promise.promise();
  private byte[] nonce;

  private KvFrameClient(NetSocket socket) {
    this.socket = socket;
    // a received payload lives only as long as the frame handler: the test thread gets a copy
    KvFrameParser.attach(socket, KvFrame.MAX_PAYLOAD, frame -> inbox.add(KvFrame.of(frame.type(),
            frame.payload().getBytes())),
        error -> inbox.add(new AssertionError("client-side framing error: " + error)));
    socket.closeHandler(v -> {
      inbox.add(CLOSED);
      closed.tryComplete();
    });
  }

  /**
   * Connects and takes the server's NONCE. The connection is made from a context of
   * {@code vertx}, so that the frame handler is attached on its event loop before any read
   * there: the server sends its NONCE at once, and a read with no handler would be lost.
   */
  public static KvFrameClient connect(Vertx vertx, NetClient client, int port) throws Exception {
    Promise<KvFrameClient> connected = Promise.promise();
    vertx.getOrCreateContext().runOnContext(v -> client.connect(port, "127.0.0.1")
        .map(KvFrameClient::new).onComplete(connected));
    KvFrameClient kv = await(connected.future());
    kv.nonce = kv.expect(KvFrame.Type.NONCE).payload().getBytes();
    return kv;
  }

  /** The PULL a decode instance holding lease key {@code pullKey} sends on this connection. */
  public KvFrame pullFrame(String transferId, String pullKey) {
    byte[] key = PullAuth.perLease().key(transferId, CLAIMANT, pullKey);
    return new PullClaim(transferId, CLAIMANT, PullAuth.proof(key, nonce, transferId)).toFrame();
  }

  /** The nonce the server opened this connection with. */
  public byte[] nonce() {
    return nonce.clone();
  }

  public void send(KvFrame frame) throws Exception {
    await(socket.write(frame.encode()));
  }

  public void sendRaw(Buffer bytes) throws Exception {
    await(socket.write(bytes));
  }

  /** Completes when the peer (or we) closed the connection. */
  public Future<Void> closed() {
    return closed.future();
  }

  /** The next frame, waiting at most 5 s; fails if the connection closes first. */
  public KvFrame next() throws InterruptedException {
    Object item = inbox.poll(5, TimeUnit.SECONDS);
    if (item == null) {
      fail("no KV frame within 5 s");
    }
    if (item == CLOSED) {
      fail("the server closed the KV connection");
    }
    if (item instanceof AssertionError error) {
      throw error;
    }
    return (KvFrame) item;
  }

  /** The next frame, which must be of type {@code type}. */
  public KvFrame expect(KvFrame.Type type) throws InterruptedException {
    KvFrame frame = next();
    assertEquals(type, frame.type(), () -> "frame payload: " + (frame.type() == KvFrame.Type.ERROR
        ? frame.payloadText() : frame.payload().length() + " bytes"));
    return frame;
  }

  /** What a whole successful pull delivered. */
  public record Pulled(byte[] header, List<byte[]> chunks) {
  }

  /** Sends the PULL of a holder of {@code pullKey} and reads HEADER, every CHUNK and END. */
  public Pulled pull(String transferId, String pullKey) throws Exception {
    send(pullFrame(transferId, pullKey));
    byte[] header = expect(KvFrame.Type.HEADER).payload().getBytes();
    assertNotNull(header);
    List<byte[]> chunks = new ArrayList<>();
    while (true) {
      KvFrame frame = next();
      if (frame.type() == KvFrame.Type.END) {
        return new Pulled(header, chunks);
      }
      assertEquals(KvFrame.Type.CHUNK, frame.type(), "expected CHUNK or END");
      chunks.add(frame.payload().getBytes());
    }
  }

  @Override
  public void close() {
    socket.close();
  }
}
