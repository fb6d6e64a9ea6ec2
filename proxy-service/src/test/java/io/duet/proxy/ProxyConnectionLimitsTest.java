package io.duet.proxy;

import static io.duet.service.ServiceTests.await;
import static io.duet.service.ServiceTests.eventually;
import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vertx.core.Vertx;
import io.vertx.core.json.JsonObject;
import io.vertx.junit5.Timeout;
import io.vertx.junit5.VertxExtension;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * What a client can hold of the proxy's HTTP server, with the limits made small: a body that
 * never fully arrives gets a 408 in the OpenAI error shape and its connection closed, an idle
 * connection is closed, connections beyond the cap are closed on accept, and HTTP/2 cleartext
 * is not offered; while a stream that runs past all those timeouts is not cut. A real server on
 * loopback against a scripted backend, driven by raw sockets.
 */
@ExtendWith(VertxExtension.class)
@Timeout(value = 60, timeUnit = TimeUnit.SECONDS)
class ProxyConnectionLimitsTest {

  private static final String HOST = "127.0.0.1";
  private static final int IDLE_SECONDS = 1;
  private static final long BODY_MILLIS = 500;
  private static final int MAX_CONNECTIONS = 3;

  private Vertx vertx;
  private StubBackend backend;
  private int port;
  private final List<Socket> sockets = new ArrayList<>();

  @BeforeEach
  void setUp(Vertx vertx) throws Exception {
    this.vertx = vertx;
    backend = new StubBackend(vertx);
    ProxyVerticle proxy = new ProxyVerticle(() -> backend, new ProxyOptions().setHost(HOST)
        .setPort(0).setInstances(2).setIdleTimeoutSeconds(IDLE_SECONDS)
        .setBodyTimeoutMillis(BODY_MILLIS).setMaxConnections(MAX_CONNECTIONS));
    await(vertx.deployVerticle(proxy));
    port = proxy.actualPort();
  }

  @AfterEach
  void closeSockets() throws IOException {
    for (Socket socket : sockets) {
      socket.close();
    }
  }

  private Socket connect() throws IOException {
    Socket socket = new Socket();
    sockets.add(socket);
    socket.setSoTimeout(10_000);
    socket.connect(new InetSocketAddress(HOST, port), 5_000);
    return socket;
  }

  /** Everything the server sends until it closes the connection (fails after 10 s). */
  private static String readToTheEnd(Socket socket) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    socket.getInputStream().transferTo(out);
    return out.toString(US_ASCII);
  }

  private static void send(Socket socket, String text) throws IOException {
    socket.getOutputStream().write(text.getBytes(US_ASCII));
    socket.getOutputStream().flush();
  }

  private static String completionHead(int contentLength) {
    return "POST /v1/completions HTTP/1.1\r\nHost: " + HOST + "\r\nContent-Type: application/json"
        + "\r\nContent-Length: " + contentLength + "\r\n\r\n";
  }

  @Test
  void aBodyShorterThanItsContentLengthIsAnswered408AndItsConnectionClosed() throws Exception {
    Socket socket = connect();
    long start = System.nanoTime();
    send(socket, completionHead(100) + "{\"model\":");
    String answer = readToTheEnd(socket);
    long millis = (System.nanoTime() - start) / 1_000_000;

    assertTrue(answer.startsWith("HTTP/1.1 408 "), answer);
    assertTrue(millis >= BODY_MILLIS - 50, "not before the body timeout: " + millis + " ms");
    JsonObject error = new JsonObject(answer.substring(answer.indexOf("\r\n\r\n") + 4))
        .getJsonObject("error");
    assertEquals("invalid_request_error", error.getString("type"));
    assertEquals("request_timeout", error.getString("code"));
    assertFalse(backend.started.future().isComplete(), "nothing reached the backend");
  }

  @Test
  void anIdleConnectionIsClosedAfterTheIdleTimeout() throws Exception {
    Socket socket = connect();
    long start = System.nanoTime();
    assertEquals(-1, socket.getInputStream().read(), "closed without a byte");
    long millis = (System.nanoTime() - start) / 1_000_000;
    assertTrue(millis >= IDLE_SECONDS * 1000 - 200, "not before the idle timeout: " + millis
        + " ms");
  }

  /**
   * A completion that is not streamed writes nothing until it is done: it is answered however
   * long past the idle timeout that takes, and its connection is closed only once it has been
   * idle that long after the answer.
   */
  @Test
  void anAnswerSlowerThanTheIdleTimeoutIsSentAndOnlyThenDoesTheIdleTimeoutRun()
      throws Exception {
    String[] pieces = new String[40];
    Arrays.fill(pieces, "x");
    backend.script = job -> StubBackend.tokens(job, 5, "length", pieces).withDelay(50);
    String body = new JsonObject().put("model", StubBackend.MODEL).put("prompt", "p").encode();
    Socket socket = connect();
    long start = System.nanoTime();
    send(socket, completionHead(body.length()) + body);
    String answer = readToTheEnd(socket);
    long millis = (System.nanoTime() - start) / 1_000_000;
    assertTrue(answer.startsWith("HTTP/1.1 200 "), answer);
    assertTrue(answer.contains("\"text\":\"" + "x".repeat(40) + "\""), answer);
    assertTrue(millis >= 40 * 50 + IDLE_SECONDS * 1000 - 200, "closed " + millis
        + " ms after the request: before the answer's 2 s and the idle timeout after it");
  }

  @Test
  void aStreamLongerThanTheTimeoutsRunsToItsEnd() throws Exception {
    String[] pieces = new String[40];
    Arrays.fill(pieces, "x");
    // 40 tokens 50 ms apart: 2 s, past the body and the idle timeouts, never idle itself
    backend.script = job -> StubBackend.tokens(job, 5, "length", pieces).withDelay(50);
    String body = new JsonObject().put("model", StubBackend.MODEL).put("prompt", "p")
        .put("stream", true).encode();
    Socket socket = connect();
    send(socket, completionHead(body.length()) + body);
    InputStream in = socket.getInputStream();
    ByteArrayOutputStream got = new ByteArrayOutputStream();
    byte[] buffer = new byte[4096];
    while (!got.toString(US_ASCII).contains("data: [DONE]")) {
      int n = in.read(buffer);
      assertTrue(n > 0, "the stream was cut: " + got.toString(US_ASCII));
      got.write(buffer, 0, n);
    }
    assertTrue(got.toString(US_ASCII).startsWith("HTTP/1.1 200 "));
  }

  @Test
  void connectionsBeyondTheCapAreClosedOnAccept() throws Exception {
    List<Socket> held = new ArrayList<>();
    for (int i = 0; i < MAX_CONNECTIONS; i++) {
      Socket socket = connect();
      send(socket, "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
      assertTrue(readHead(socket).startsWith("HTTP/1.1 200 "));
      held.add(socket);
    }
    Socket over = connect();
    assertEquals(-1, over.getInputStream().read(), "closed on accept");
    held.get(0).close();
    eventually("a place is free again", Duration.ofSeconds(5), () -> {
      try {
        Socket again = connect();
        send(again, "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        return readToTheEnd(again).startsWith("HTTP/1.1 200 ");
      } catch (IOException e) {
        return false;
      }
    });
  }

  /** Reads up to the end of the response head. */
  private static String readHead(Socket socket) throws IOException {
    InputStream in = socket.getInputStream();
    StringBuilder head = new StringBuilder();
    while (!head.toString().contains("\r\n\r\n")) {
      int c = in.read();
      if (c < 0) {
        break;
      }
      head.append((char) c);
    }
    return head.toString();
  }

  @Test
  void anH2cUpgradeIsNotTaken() throws Exception {
    Socket socket = connect();
    send(socket, "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        + "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
    String head = readHead(socket);
    assertTrue(head.startsWith("HTTP/1.1 200 "), "answered in HTTP/1.1, not 101: " + head);
  }
}
