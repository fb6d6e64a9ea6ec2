package io.duet.proxy.it;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * HTTP/1.1 over a plain socket, one exchange per connection: the request goes out byte for byte
 * as given (malformed ones included, which no HTTP client library would send), the whole answer
 * is read until the server closes the connection.
 */
final class RawHttp {

  /** A parsed answer; {@code body} is de-chunked. */
  record Response(int status, Map<String, String> headers, String body) {

    String header(String name) {
      return headers.get(name.toLowerCase(Locale.ROOT));
    }
  }

  private RawHttp() {
  }

  /** {@link #exchange(int, byte[], Duration, boolean)} of a whole request. */
  static Response exchange(int port, byte[] request, Duration timeout) throws IOException {
    return exchange(port, request, timeout, false);
  }

  /**
   * Sends {@code request} to 127.0.0.1:{@code port} and reads the answer.
   *
   * @param halfClose whether to end the sending side once the request is out, for a request
   *     the server could otherwise wait on for more bytes (a body shorter than its
   *     Content-Length); a server takes that for a client that went away
   * @return the answer, or null when the server closed the connection without one
   * @throws java.net.SocketTimeoutException when no answer ends within {@code timeout}
   */
  static Response exchange(int port, byte[] request, Duration timeout, boolean halfClose)
      throws IOException {
    try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
      socket.setSoTimeout((int) timeout.toMillis());
      OutputStream out = socket.getOutputStream();
      try {
        out.write(request);
        out.flush();
        if (halfClose) {
          socket.shutdownOutput();
        }
      } catch (SocketException closedEarly) {
        // The server may answer and close before it read everything (a 413, a 431).
      }
      return parse(readAll(socket.getInputStream()));
    }
  }

  /** A request with {@code Connection: close}, a Content-Length and the given extra headers. */
  static byte[] request(String method, String path, String extraHeaders, byte[] body) {
    String head = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + (body == null ? "" : "Content-Length: " + body.length + "\r\n") + extraHeaders + "\r\n";
    byte[] headBytes = head.getBytes(StandardCharsets.ISO_8859_1);
    if (body == null) {
      return headBytes;
    }
    byte[] all = new byte[headBytes.length + body.length];
    System.arraycopy(headBytes, 0, all, 0, headBytes.length);
    System.arraycopy(body, 0, all, headBytes.length, body.length);
    return all;
  }

  /** A JSON POST. */
  static byte[] postJson(String path, String json) {
    return request("POST", path, "Content-Type: application/json\r\n",
        json.getBytes(StandardCharsets.UTF_8));
  }

  private static byte[] readAll(InputStream in) throws IOException {
    ByteArrayOutputStream all = new ByteArrayOutputStream();
    byte[] buffer = new byte[8192];
    try {
      for (int n; (n = in.read(buffer)) > 0; ) {
        all.write(buffer, 0, n);
      }
    } catch (SocketException reset) {
      // A reset after the answer (the server closed with unread input): keep what came.
    }
    return all.toByteArray();
  }

  private static Response parse(byte[] bytes) {
    String text = new String(bytes, StandardCharsets.UTF_8);
    int headEnd = text.indexOf("\r\n\r\n");
    if (bytes.length == 0 || headEnd < 0) {
      return null;
    }
    String[] lines = text.substring(0, headEnd).split("\r\n");
    int status = Integer.parseInt(lines[0].split(" ")[1]);
    Map<String, String> headers = new HashMap<>();
    for (int i = 1; i < lines.length; i++) {
      int colon = lines[i].indexOf(':');
      headers.put(lines[i].substring(0, colon).trim().toLowerCase(Locale.ROOT),
          lines[i].substring(colon + 1).trim());
    }
    String body = text.substring(headEnd + 4);
    if ("chunked".equalsIgnoreCase(headers.get("transfer-encoding"))) {
      body = dechunk(body);
    }
    return new Response(status, headers, body);
  }

  /** The data of a chunked body (sizes count bytes; the bodies here are UTF-8 text). */
  private static String dechunk(String chunked) {
    byte[] bytes = chunked.getBytes(StandardCharsets.UTF_8);
    ByteArrayOutputStream data = new ByteArrayOutputStream();
    int at = 0;
    while (at < bytes.length) {
      int lineEnd = indexOf(bytes, at);
      int size = Integer.parseInt(new String(bytes, at, lineEnd - at,
          StandardCharsets.ISO_8859_1).split(";")[0].trim(), 16);
      if (size == 0) {
        break;
      }
      data.write(bytes, lineEnd + 2, size);
      at = lineEnd + 2 + size + 2;
    }
    return data.toString(StandardCharsets.UTF_8);
  }

  private static int indexOf(byte[] bytes, int from) {
    for (int i = from; i + 1 < bytes.length; i++) {
      if (bytes[i] == '\r' && bytes[i + 1] == '\n') {
        return i;
      }
    }
    throw new IllegalArgumentException("a chunk size line without its end");
  }
}
