package io.duet.proxy;

import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.eventually;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.contract.InstanceInfo;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.json.JsonObject;
import io.vertx.junit5.Timeout;
import io.vertx.junit5.VertxExtension;
import java.io.IOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * A proxy undeployed (as SIGTERM does) with streams open: it refuses new connections at once,
 * lets the open streams run to their end within its drain timeout, cuts those that outlast it,
 * and announces draining, then left. A real server on loopback against a scripted backend.
 */
@ExtendWith(VertxExtension.class)
@Timeout(value = 30, timeUnit = TimeUnit.SECONDS)
class ProxyDrainTest {

  private static final String HOST = "127.0.0.1";
  private static final Duration WAIT = Duration.ofSeconds(10);
  /** Tokens of the stream open when the proxy stops, 50 ms apart: it outlives the stop by far. */
  private static final int TOKENS = 100;

  private Vertx vertx;
  private StubBackend backend;
  private final List<InstanceInfo.State> announced = new CopyOnWriteArrayList<>();

  @BeforeEach
  void setUp(Vertx vertx) {
    this.vertx = vertx;
    backend = new StubBackend(vertx);
  }

  private ProxyVerticle deploy(long drainTimeoutMillis) throws Exception {
    ProxyVerticle proxy = new ProxyVerticle(() -> backend, new ProxyOptions().setHost(HOST)
        .setPort(0).setInstances(2).setDrainTimeoutMillis(drainTimeoutMillis))
        .onStateChange(announced::add);
    await(vertx.deployVerticle(proxy));
    return proxy;
  }

  @Test
  void aStoppingProxyRefusesNewConnectionsAndFinishesItsOpenStreams() throws Exception {
    String[] pieces = new String[TOKENS];
    Arrays.fill(pieces, "x");
    backend.script = job -> StubBackend.tokens(job, 5, "length", pieces).withDelay(50);
    ProxyVerticle proxy = deploy(WAIT.toMillis());
    int port = proxy.actualPort();
    Stream open = stream(port);
    await(backend.started.future());

    Future<Void> undeployed = vertx.undeploy(proxy.deploymentID());
    eventually("the listening socket to be closed", WAIT, () -> refusesConnections(port));
    assertEquals(InstanceInfo.State.DRAINING, proxy.state());
    assertEquals(List.of(InstanceInfo.State.DRAINING), announced);
    assertFalse(undeployed.isComplete(), "the proxy waits for its open stream");

    String body = await(open.body);
    assertTrue(body.endsWith("data: [DONE]\n\n"), body);
    assertEquals(TOKENS, body.split("\n\n").length - 1, body);
    await(undeployed);
    assertEquals(List.of(InstanceInfo.State.DRAINING, InstanceInfo.State.LEFT), announced);
    assertEquals(InstanceInfo.State.LEFT, proxy.state());
    assertEquals(0, backend.cancels.get(), "no stream was cut");
  }

  @Test
  void aStreamThatOutlastsTheDrainTimeoutIsCut() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, null, "first").thenHang();
    ProxyVerticle proxy = deploy(300);
    Stream open = stream(proxy.actualPort());
    await(backend.started.future());

    long start = System.nanoTime();
    await(vertx.undeploy(proxy.deploymentID()));
    long tookMillis = (System.nanoTime() - start) / 1_000_000;
    assertTrue(tookMillis >= 300 && tookMillis < WAIT.toMillis(), tookMillis + " ms");
    assertThrows(Exception.class, () -> await(open.body), "the stream was cut");
    await(backend.cancelled.future());
    assertEquals(List.of(InstanceInfo.State.DRAINING, InstanceInfo.State.LEFT), announced);
  }

  @Test
  void withoutADrainTimeoutTheProxyStopsAtOnce() throws Exception {
    backend.script = job -> StubBackend.tokens(job, 5, null, "first").thenHang();
    ProxyVerticle proxy = deploy(0);
    Stream open = stream(proxy.actualPort());
    await(backend.started.future());

    await(vertx.undeploy(proxy.deploymentID()));
    assertThrows(Exception.class, () -> await(open.body), "the stream was cut");
    await(backend.cancelled.future());
  }

  /** A streamed completion; its body completes when the response has ended. */
  private record Stream(Future<String> body) {
  }

  private Stream stream(int port) {
    HttpClient http = vertx.createHttpClient();
    Promise<String> body = Promise.promise();
    http.request(HttpMethod.POST, port, HOST, "/v1/completions")
        .compose(request -> request.putHeader("Content-Type", "application/json")
            .send(new JsonObject().put("model", StubBackend.MODEL).put("prompt", "p")
                .put("stream", true).encode()))
        .compose(response -> response.body().map(Buffer::toString))
        .onComplete(body);
    return new Stream(body.future());
  }

  private static boolean refusesConnections(int port) {
    try (Socket socket = new Socket(InetAddress.getByName(HOST), port)) {
      return false;
    } catch (ConnectException refused) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }
}
