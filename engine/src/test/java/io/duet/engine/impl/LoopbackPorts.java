package io.duet.engine.impl;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;

/** Ports for ranks of an expert-parallel group on loopback. */
public final class LoopbackPorts {

  private LoopbackPorts() {
  }

  /** Addresses of {@code count} loopback ports that were free a moment ago, all different. */
  public static List<InetSocketAddress> free(int count) throws IOException {
    List<InetSocketAddress> addresses = new ArrayList<>();
    List<ServerSocket> held = new ArrayList<>();
    try {
      for (int i = 0; i < count; i++) {
        ServerSocket socket = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
        held.add(socket);
        addresses.add(new InetSocketAddress("127.0.0.1", socket.getLocalPort()));
      }
    } finally {
      for (ServerSocket socket : held) {
        socket.close();
      }
    }
    return addresses;
  }
}
