package io.duet.kv;

import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.eventually;
import static io.duet.service.ServiceTests.shared;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.Failure;
import io.duet.contract.KvHandle;
import io.duet.contract.ServiceException;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.Sequence;
import io.duet.service.ServiceTests.Engines;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.net.NetClient;
import io.vertx.core.net.NetClientOptions;
import io.vertx.core.net.NetSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The KV channel trusts no one: over real TCP on 127.0.0.1, a client that knows a transfer id,
 * or replays another connection's PULL, gets nothing and changes nothing; a lease is served
 * once and released only by its puller; and a client cannot make the server hold much (frame
 * cap, half-frame and idle timeouts, connection cap, each set small here). Then the real
 * puller, with a cluster secret and over TLS with a certificate the test generates; a wrong key
 * or another layout is refused alike over TCP and by the same-JVM handoff.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class KvChannelSecurityTest {

  private static final int PROMPT_TOKENS = 100;
  private static final String UNKNOWN = KvTransferServer.UNKNOWN_TRANSFER;

  private final Engines engines = new Engines();
  private final PrometheusMeterRegistry metrics = new PrometheusMeterRegistry(
      PrometheusConfig.DEFAULT);
  private Vertx vertx;
  private NetClient netClient;
  private Engine engine;
  private LeaseTable leases;
  private KvTransferServer server;

  @BeforeEach
  void start() throws Exception {
    vertx = Vertx.vertx();
    netClient = vertx.createNetClient(new NetClientOptions().setConnectTimeout(5_000));
    engine = engines.open(options());
  }

  @AfterEach
  void stop() throws Exception {
    await(vertx.close());
    engines.close();
  }

  private static EngineOptions options() {
    return new EngineOptions().modelPath(shared("stories260K.bin")).kvBlocks(64).threads(1);
  }

  /** A server over a new lease table with {@code auth}, and {@code channel}'s limits and TLS. */
  private void serve(PullAuth auth, KvChannel channel) throws Exception {
    leases = new LeaseTable(vertx, engine, 30_000, auth, () -> { });
    server = new KvTransferServer(vertx, leases, metrics);
    await(server.listen("127.0.0.1", 0, KvTransferServer.Settings.of(30_000, channel)));
  }

  private void serve() throws Exception {
    serve(PullAuth.perLease(), KvChannel.defaults());
  }

  private String lease(String requestId) {
    int[] prompt = IntStream.range(0, PROMPT_TOKENS).map(i -> 10 + (i * 7) % 400).toArray();
    Sequence sequence = engine.allocate(prompt);
    engine.step(List.of(sequence));
    return leases.lease(requestId, sequence);
  }

  private int used() {
    return engine.kvStats().usedBlocks();
  }

  private KvFrameClient connect() throws Exception {
    return KvFrameClient.connect(vertx, netClient, server.actualPort());
  }

  private static void expectUnknown(KvFrameClient client, KvFrame frame) throws Exception {
    client.send(frame);
    assertEquals(UNKNOWN, client.expect(KvFrame.Type.ERROR).payloadText());
  }

  private static KvFrame release(String transferId) {
    return KvFrame.text(KvFrame.Type.RELEASE, transferId);
  }

  /**
   * A plain TCP connection and what it received, its handlers set on its event loop before any
   * read (see {@link KvFrameClient#connect}).
   */
  private record RawConnection(NetSocket socket, Buffer received, Future<Void> closed) {
  }

  private RawConnection rawConnect() throws Exception {
    Promise<RawConnection> connected = Promise.promise();
    vertx.getOrCreateContext().runOnContext(v -> netClient.connect(server.actualPort(),
        "127.0.0.1").map(socket -> {
          Buffer received = Buffer.buffer();
          Promise<Void> closed = Promise.promise();
          socket.handler(received::appendBuffer);
          socket.closeHandler(x -> closed.complete());
          return new RawConnection(socket, received, closed.future());
        }).onComplete(connected));
    return await(connected.future());
  }

  private double counter(String name) {
    return metrics.find(name).counter().count();
  }

  // ------------------------------------------------------------------ trust

  @Test
  void aSniffedIdOrAReplayedPullFromAnotherConnectionGetsNothingAndChangesNothing()
      throws Exception {
    serve();
    String transferId = lease("r1");
    String key = leases.pullKey(transferId);
    int held = used();
    assertTrue(held > 0);
    try (KvFrameClient decode = connect(); KvFrameClient sniffer = connect()) {
      KvFrame realPull = decode.pullFrame(transferId, key);
      // the id alone, with a made-up key, and the real client's PULL frame replayed verbatim
      // (its proof is over the other connection's nonce)
      expectUnknown(sniffer, sniffer.pullFrame(transferId, "bm90LXRoZS1rZXk"));
      expectUnknown(sniffer, realPull);
      expectUnknown(sniffer, release(transferId));
      assertEquals(held, used(), "the lease is untouched");

      // the real request still completes
      decode.send(realPull);
      decode.expect(KvFrame.Type.HEADER);
      KvFrame frame;
      int chunks = 0;
      while ((frame = decode.next()).type() == KvFrame.Type.CHUNK) {
        chunks++;
      }
      assertEquals(KvFrame.Type.END, frame.type());
      assertTrue(chunks > 0);

      // served once: even the right key from another connection gets nothing now, and cannot
      // release what it did not pull
      expectUnknown(sniffer, sniffer.pullFrame(transferId, key));
      expectUnknown(sniffer, release(transferId));
      assertEquals(held, used(), "the pulled lease is the puller's to release");

      decode.send(release(transferId));
      decode.expect(KvFrame.Type.RELEASED);
    }
    assertEquals(0, used());
  }

  @Test
  void aReleaseOfAnUnknownIdIsRefusedAndTheConnectionStaysUsable() throws Exception {
    serve();
    String transferId = lease("r1");
    try (KvFrameClient client = connect()) {
      expectUnknown(client, release("no-such-transfer"));
      expectUnknown(client, release(transferId));
      assertTrue(used() > 0, "a RELEASE before the PULL frees nothing");
      client.pull(transferId, leases.pullKey(transferId));
      client.send(release(transferId));
      client.expect(KvFrame.Type.RELEASED);
    }
    assertEquals(0, used());
  }

  @Test
  void withAClusterSecretTheKeyIsDerivedAndNothingTravels() throws Exception {
    serve(PullAuth.withSecret("s3cret"), KvChannel.defaults());
    String transferId = lease("r1");
    assertEquals(null, leases.pullKey(transferId), "no key to hand out");
    byte[] key = PullAuth.withSecret("s3cret").key(transferId, KvFrameClient.CLAIMANT, null);
    byte[] otherSecret = PullAuth.withSecret("guess").key(transferId, KvFrameClient.CLAIMANT,
        null);
    try (KvFrameClient client = connect()) {
      expectUnknown(client, new PullClaim(transferId, KvFrameClient.CLAIMANT,
          PullAuth.proof(otherSecret, client.nonce(), transferId)).toFrame());
      // the key is bound to the decode instance it was derived for
      expectUnknown(client, new PullClaim(transferId, "another-decode",
          PullAuth.proof(key, client.nonce(), transferId)).toFrame());
      client.send(new PullClaim(transferId, KvFrameClient.CLAIMANT,
          PullAuth.proof(key, client.nonce(), transferId)).toFrame());
      client.expect(KvFrame.Type.HEADER);
    }
    eventually("the lease ends with the connection that pulled it", Duration.ofSeconds(5),
        () -> used() == 0);
  }

  // ------------------------------------------------------------------ bounds

  @Test
  void aClientFrameAboveTheCapClosesTheConnectionFromItsHead() throws Exception {
    serve();
    String transferId = lease("r1");
    try (KvFrameClient client = connect()) {
      // at the cap: read whole, and refused as a release of nothing
      expectUnknown(client, KvFrame.of(KvFrame.Type.RELEASE, new byte[KvFrame.MAX_CLIENT_PAYLOAD]));
      // one byte more: the head alone closes the connection, nothing of the body is awaited
      client.sendRaw(Buffer.buffer().appendByte((byte) KvFrame.Type.RELEASE.code())
          .appendInt(KvFrame.MAX_CLIENT_PAYLOAD + 1));
      await(client.closed());
    }
    assertTrue(used() > 0, "the lease outlives a connection that never pulled it");
    try (KvFrameClient client = connect()) {
      assertFalse(client.pull(transferId, leases.pullKey(transferId)).chunks().isEmpty());
    }
  }

  @Test
  void aHalfSentFrameIsCutOffAfterTheFrameTimeout() throws Exception {
    serve(PullAuth.perLease(), KvChannel.defaults().withLimits(300, 300, 1024));
    try (KvFrameClient idle = connect(); KvFrameClient half = connect()) {
      long start = System.nanoTime();
      half.sendRaw(Buffer.buffer().appendByte((byte) KvFrame.Type.PULL.code()).appendShort(
          (short) 0));
      await(half.closed().timeout(10, TimeUnit.SECONDS));
      long millis = (System.nanoTime() - start) / 1_000_000;
      assertTrue(millis >= 250, "not before the timeout: " + millis + " ms");
      assertEquals(1, counter(KvTransferServer.FRAME_TIMEOUTS_METRIC));
      // a connection between frames is not affected
      expectUnknown(idle, release("x"));
    }
  }

  @Test
  void anIdleConnectionIsClosedAfterTheIdleTimeout() throws Exception {
    serve(PullAuth.perLease(), KvChannel.defaults().withLimits(10_000, 1, 1024));
    try (KvFrameClient client = connect()) {
      long start = System.nanoTime();
      await(client.closed().timeout(10, TimeUnit.SECONDS));
      long millis = (System.nanoTime() - start) / 1_000_000;
      assertTrue(millis >= 500, "closed after " + millis + " ms, before the 1 s idle timeout");
    }
  }

  @Test
  void connectionsBeyondTheCapAreClosedOnAccept() throws Exception {
    serve(PullAuth.perLease(), KvChannel.defaults().withLimits(10_000, 300, 2));
    try (KvFrameClient first = connect(); KvFrameClient second = connect()) {
      RawConnection third = rawConnect();
      await(third.closed().timeout(10, TimeUnit.SECONDS));
      assertTrue(third.received().length() == 0, "not even a NONCE");
      assertEquals(1, counter(KvTransferServer.REFUSED_METRIC));
      first.close();
      await(first.closed());
      eventually("a place is free again", Duration.ofSeconds(5), () -> {
        try (KvFrameClient again = connect()) {
          return true;
        } catch (Exception | AssertionError e) {
          return false;
        }
      });
      expectUnknown(second, release("x"));
    }
  }

  // ------------------------------------------------------------------ the real puller

  /** Pulls {@code transferId} with a new puller, on a context of its own as the puller needs. */
  private Future<Sequence> pullWith(Engine receiver, KvChannel channel, String claimant,
      String transferId) {
    return pullWith(receiver, channel, claimant, transferId, leases.pullKey(transferId));
  }

  /** As {@link #pullWith(Engine, KvChannel, String, String)}, with {@code pullKey} in the handle. */
  private Future<Sequence> pullWith(Engine receiver, KvChannel channel, String claimant,
      String transferId, String pullKey) {
    Context context = vertx.getOrCreateContext();
    Promise<Sequence> pulled = Promise.promise();
    KvHandle handle = new KvHandle("p0", "127.0.0.1", server.actualPort(), transferId,
        0, PROMPT_TOKENS, engine.layout().fingerprint(), 0, pullKey);
    context.runOnContext(v -> new KvPuller(vertx, receiver, 1, 10_000, claimant, channel)
        .pull(handle).map(KvPuller.Pulled::sequence).onComplete(pulled));
    return pulled.future();
  }

  @ParameterizedTest(name = "same-JVM handoff {0}")
  @ValueSource(booleans = {false, true})
  void thePullerProvesADerivedKeyAndAStrangerIsRefused(boolean sameJvm) throws Exception {
    KvChannel secret = new KvChannel(PullAuth.withSecret("s3cret"), null, 10_000, 300, 1024,
        sameJvm);
    serve(secret.auth(), secret);
    Engine receiver = engines.open(options());
    String transferId = lease("r1");

    ExceptionHolder refused = failure(pullWith(receiver,
        new KvChannel(PullAuth.withSecret("guess"), null, 10_000, 300, 1024, sameJvm), "d0",
        transferId));
    assertEquals(Failure.KV_TRANSFER, refused.failure);
    assertTrue(refused.message.contains("UNKNOWN_TRANSFER"), refused.message);
    assertTrue(used() > 0, "the refused pull changed nothing");

    Sequence sequence = await(pullWith(receiver, secret, "d0", transferId));
    assertEquals(PROMPT_TOKENS, sequence.length());
    receiver.release(sequence);
    eventually("the puller's RELEASE freed the lease", Duration.ofSeconds(5), () -> used() == 0);
  }

  /** A handle whose per-lease key is not the lease's opens nothing, and changes nothing. */
  @ParameterizedTest(name = "same-JVM handoff {0}")
  @ValueSource(booleans = {false, true})
  void aWrongPullKeyIsRefusedAndTheRightOneStillPulls(boolean sameJvm) throws Exception {
    serve();
    Engine receiver = engines.open(options());
    String transferId = lease("r1");
    KvChannel channel = KvChannel.defaults().withSameJvmHandoff(sameJvm);
    String wrongKey = Base64.getUrlEncoder().withoutPadding().encodeToString(new byte[32]);

    ExceptionHolder refused = failure(pullWith(receiver, channel, "d0", transferId, wrongKey));
    assertEquals(Failure.KV_TRANSFER, refused.failure);
    assertTrue(refused.message.contains("UNKNOWN_TRANSFER"), refused.message);
    assertEquals(0, receiver.kvStats().usedBlocks());

    Sequence sequence = await(pullWith(receiver, channel, "d0", transferId));
    receiver.release(sequence);
    eventually("the puller's release freed the lease", Duration.ofSeconds(5), () -> used() == 0);
  }

  /** An engine of another layout refuses the KV at its header, before taking any block. */
  @ParameterizedTest(name = "same-JVM handoff {0}")
  @ValueSource(booleans = {false, true})
  void anotherLayoutIsRefusedAsIncompatible(boolean sameJvm) throws Exception {
    serve();
    Engine receiver = engines.open(new EngineOptions().modelPath(shared("aidreams260K.bin"))
        .kvBlocks(64).threads(1));
    String transferId = lease("r1");

    ExceptionHolder refused = failure(pullWith(receiver,
        KvChannel.defaults().withSameJvmHandoff(sameJvm), "d0", transferId));
    assertEquals(Failure.INCOMPATIBLE_KV, refused.failure, refused.message);
    assertEquals(0, receiver.kvStats().usedBlocks());
    eventually("the lease ended with its pull", Duration.ofSeconds(5), () -> used() == 0);
  }

  private record ExceptionHolder(Failure failure, String message) {
  }

  private static ExceptionHolder failure(Future<?> future) {
    ServiceException e = assertThrows(ServiceException.class, () -> await(future));
    return new ExceptionHolder(e.failure(), e.getMessage());
  }

  @Test
  void overTlsThePullerPullsAndAPlainClientGetsNothing(@TempDir Path dir) throws Exception {
    KvTls tls = selfSigned(dir);
    KvChannel channel = KvChannel.defaults().withTls(tls).withSameJvmHandoff(false);
    serve(channel.auth(), channel);
    Engine receiver = engines.open(options());
    String transferId = lease("r1");

    // a plain TCP client sees no NONCE, only a TLS handshake it does not speak
    RawConnection plain = rawConnect();
    await(plain.socket().write(KvFrame.text(KvFrame.Type.RELEASE, transferId).encode()));
    await(plain.closed().timeout(10, TimeUnit.SECONDS));
    assertTrue(plain.received().length() == 0 || plain.received().getByte(0)
        != KvFrame.Type.NONCE.code(), "no KV frame in clear");
    assertTrue(used() > 0);

    // a TLS client that does not trust the certificate is refused by its own handshake
    ExceptionHolder untrusted = failure(pullWith(receiver, channel.withTls(
        new KvTls(null, null, someOtherCa(dir))), "d0", transferId));
    assertEquals(Failure.KV_UNREACHABLE, untrusted.failure, untrusted.message);

    Sequence sequence = await(pullWith(receiver, channel, "d0", transferId));
    assertEquals(PROMPT_TOKENS, sequence.length());
    receiver.release(sequence);
    eventually("the puller's RELEASE freed the lease", Duration.ofSeconds(5), () -> used() == 0);
  }

  /**
   * A self-signed certificate for 127.0.0.1 made with the JDK's keytool, written as PEM: the
   * certificate and its PKCS#8 private key.
   */
  static KvTls selfSigned(Path dir) throws Exception {
    Files.createDirectories(dir);
    Path store = dir.resolve("kv.p12");
    char[] password = "changeit".toCharArray();
    Process keytool = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin",
        "keytool").toString(), "-genkeypair", "-alias", "kv", "-keyalg", "EC", "-groupname",
        "secp256r1", "-dname", "CN=duet-kv", "-ext", "SAN=ip:127.0.0.1", "-validity", "2",
        "-storetype", "PKCS12", "-keystore", store.toString(), "-storepass", "changeit")
        .redirectErrorStream(true).start();
    String output = new String(keytool.getInputStream().readAllBytes());
    assertTrue(keytool.waitFor(60, TimeUnit.SECONDS) && keytool.exitValue() == 0, output);
    KeyStore keys = KeyStore.getInstance("PKCS12");
    try (var in = Files.newInputStream(store)) {
      keys.load(in, password);
    }
    Path cert = dir.resolve("kv-cert.pem");
    Path key = dir.resolve("kv-key.pem");
    Files.writeString(cert, pem("CERTIFICATE", keys.getCertificate("kv").getEncoded()));
    Files.writeString(key, pem("PRIVATE KEY", keys.getKey("kv", password).getEncoded()));
    return new KvTls(cert, key, cert);
  }

  /** A CA certificate of the JDK's trust store, which signed nothing of this test's. */
  private static Path someOtherCa(Path dir) throws Exception {
    KeyStore cacerts = KeyStore.getInstance(KeyStore.getDefaultType());
    try (var in = Files.newInputStream(Path.of(System.getProperty("java.home"), "lib",
        "security", "cacerts"))) {
      cacerts.load(in, null);
    }
    Path ca = dir.resolve("other-ca.pem");
    Files.writeString(ca, pem("CERTIFICATE", cacerts.getCertificate(
        cacerts.aliases().nextElement()).getEncoded()));
    return ca;
  }

  private static String pem(String type, byte[] der) {
    return "-----BEGIN " + type + "-----\n"
        + Base64.getMimeEncoder(64, "\n".getBytes()).encodeToString(der)
        + "\n-----END " + type + "-----\n";
  }
}
