package io.duet.proxy.it;

import static java.nio.charset.StandardCharsets.UTF_8;

import io.vertx.core.json.JsonObject;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A completion streamed from the proxy and read as it comes, each server-sent event with the
 * time it arrived. It is read on a raw socket by a thread of its own, so that {@link #close}
 * is a client that really goes away (the proxy sees the connection close) and a test can see
 * when an event came, not only that it did.
 */
final class SseStream implements AutoCloseable {

  /** The payload of a {@code data:} line and when it arrived ({@link System#nanoTime}). */
  record Event(String data, long arrivedNanos) {

    boolean isDone() {
      return data.equals("[DONE]");
    }

    boolean isError() {
      return !isDone() && new JsonObject(data).containsKey("error");
    }

    /** The text the event adds to a completion. */
    String text() {
      if (isDone() || isError()) {
        return "";
      }
      var choices = new JsonObject(data).getJsonArray("choices");
      return choices.isEmpty() ? "" : choices.getJsonObject(0).getString("text", "");
    }
  }

  private final JsonObject request;
  private final Socket socket;
  private final List<Event> events = new CopyOnWriteArrayList<>();
  private final CompletableFuture<Void> ended = new CompletableFuture<>();
  private volatile int status;
  private volatile String body = "";

  private SseStream(JsonObject request, Socket socket) {
    this.request = request;
    this.socket = socket;
  }

  /** Posts {@code request} to {@code /v1/completions} as a stream and starts reading it. */
  static SseStream open(int proxyPort, JsonObject request) throws IOException {
    byte[] bytes = request.copy().put("stream", true).encode().getBytes(UTF_8);
    Socket socket = new Socket(InetAddress.getLoopbackAddress(), proxyPort);
    OutputStream out = socket.getOutputStream();
    out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:" + proxyPort
        + "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n"
        + "Content-Length: " + bytes.length + "\r\n\r\n").getBytes(UTF_8));
    out.write(bytes);
    out.flush();
    SseStream stream = new SseStream(request, socket);
    Thread reader = new Thread(stream::read, "sse-" + socket.getLocalPort());
    reader.setDaemon(true);
    reader.start();
    return stream;
  }

  /** What was asked. */
  JsonObject request() {
    return request;
  }

  /** Completes when the response has ended: its last event, an error, or the connection's end. */
  CompletableFuture<Void> ended() {
    return ended;
  }

  /** The HTTP status; 0 until the status line came. */
  int status() {
    return status;
  }

  /** The body of a response that is not a stream of events (an HTTP error). */
  String body() {
    return body;
  }

  List<Event> events() {
    return List.copyOf(events);
  }

  /** The text of the completion so far. */
  String text() {
    StringBuilder text = new StringBuilder();
    events.forEach(event -> text.append(event.text()));
    return text.toString();
  }

  Optional<Event> error() {
    return events.stream().filter(Event::isError).findFirst();
  }

  /** Whether the stream ended as a stream should: {@code [DONE]}, no error before it. */
  boolean completed() {
    return !events.isEmpty() && events.get(events.size() - 1).isDone() && error().isEmpty();
  }

  /** Everything that came, for an assertion's message. */
  String describe() {
    return "HTTP " + status + ", " + events.size() + " events, body '" + body + "'"
        + (events.isEmpty() ? "" : ", last: " + events.get(events.size() - 1).data());
  }

  /** Closes the connection: the client leaves. */
  @Override
  public void close() throws IOException {
    socket.close();
  }

  private void read() {
    try (InputStream in = new BufferedInputStream(socket.getInputStream())) {
      String statusLine = line(in);
      status = Integer.parseInt(statusLine.split(" ")[1]);
      boolean chunked = false;
      int length = -1;
      for (String header = line(in); !header.isEmpty(); header = line(in)) {
        String lower = header.toLowerCase(Locale.ROOT);
        chunked |= lower.equals("transfer-encoding: chunked");
        if (lower.startsWith("content-length:")) {
          length = Integer.parseInt(lower.substring("content-length:".length()).trim());
        }
      }
      InputStream content = chunked ? new Dechunked(in) : in;
      if (status != 200) {
        // an error has a length: the connection stays open after it
        body = new String(length >= 0 ? content.readNBytes(length) : content.readAllBytes(),
            UTF_8);
        return;
      }
      for (String line = line(content); line != null; line = line(content)) {
        if (line.startsWith("data: ")) {
          Event event = new Event(line.substring("data: ".length()).trim(), System.nanoTime());
          events.add(event);
          if (event.isDone()) {
            return;
          }
        }
      }
    } catch (IOException | RuntimeException e) {
      // closed by the test, or cut by the proxy: the events so far are what came
    } finally {
      ended.complete(null);
    }
  }

  /** A line without its line break; null at the end of the stream. */
  private static String line(InputStream in) throws IOException {
    ByteArrayOutputStream line = new ByteArrayOutputStream();
    int b = in.read();
    if (b < 0) {
      return null;
    }
    while (b >= 0 && b != '\n') {
      if (b != '\r') {
        line.write(b);
      }
      b = in.read();
    }
    return line.toString(UTF_8);
  }

  /** The content of a chunked body: the chunks' bytes without their sizes. */
  private static final class Dechunked extends InputStream {
    private final InputStream in;
    private int left;
    private boolean last;

    Dechunked(InputStream in) {
      this.in = in;
    }

    @Override
    public int read() throws IOException {
      if (left == 0 && !last) {
        String size = line(in);
        if (size != null && size.isEmpty()) {
          size = line(in); // the line break that closed the previous chunk
        }
        left = size == null ? 0 : Integer.parseInt(size.split(";")[0].trim(), 16);
        last = left == 0;
      }
      if (last) {
        return -1;
      }
      left--;
      return in.read();
    }
  }
}
