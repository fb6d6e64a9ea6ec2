package io.duet.proxy.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * The service JVM that {@code java -jar} relaunches lives and dies with its launcher: the
 * packaged proxy (with its embedded prefill and decode instances) started as a user starts it,
 * then its launcher killed with SIGKILL, which it cannot forward: the service's port must close
 * within 2 s. And a SIGTERM to the launcher reaches the service, which drains and exits first,
 * warning of nothing.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class OrphanJvmIT {

  private static final long ORPHAN_LIMIT_MILLIS = 2_000;

  @TempDir
  Path work;

  /** The one child JVM the launcher relaunched the service in. */
  private static ProcessHandle service(ProxyProcess proxy) {
    List<ProcessHandle> children = proxy.process().children().toList();
    assertEquals(1, children.size(), "the launcher runs the service in one child JVM: "
        + children);
    return children.get(0);
  }

  private static boolean refusesConnections(int port) {
    try (Socket socket = new Socket()) {
      socket.connect(new InetSocketAddress("127.0.0.1", port), 1_000);
      return false;
    } catch (ConnectException refused) {
      return true;
    } catch (IOException e) {
      return false;
    }
  }

  /**
   * Whether the process has exited: gone, or a zombie. Its launcher dead, it waits as a zombie
   * until the process that adopted it reaps it, which {@link ProcessHandle#isAlive} counts as
   * alive; a zombie holds no memory, port or file any more.
   */
  private static boolean exited(ProcessHandle process) throws IOException {
    if (!process.isAlive()) {
      return true;
    }
    try {
      String stat = Files.readString(Path.of("/proc", Long.toString(process.pid()), "stat"));
      char state = stat.substring(stat.lastIndexOf(')') + 2).charAt(0);
      return state == 'Z' || state == 'X';
    } catch (NoSuchFileException gone) {
      return true;
    }
  }

  @Test
  void killingTheLauncherEndsTheServiceWithinTwoSeconds() throws Exception {
    try (ProxyProcess proxy = ProxyProcess.startAsUsersDo(work)) {
      ProcessHandle service = service(proxy);
      try {
        assertFalse(refusesConnections(proxy.port()), "the service serves");
        long start = System.nanoTime();
        proxy.process().destroyForcibly(); // SIGKILL to the launcher alone
        long portClosed = -1;
        long jvmGone = -1;
        while (portClosed < 0 || jvmGone < 0) {
          long now = System.nanoTime();
          assertTrue(now - start < TimeUnit.SECONDS.toNanos(30),
              "the orphaned service still runs after 30 s");
          if (portClosed < 0 && refusesConnections(proxy.port())) {
            portClosed = (now - start) / 1_000_000;
          }
          if (jvmGone < 0 && exited(service)) {
            jvmGone = (now - start) / 1_000_000;
          }
          Thread.sleep(10);
        }
        long millis = Math.max(portClosed, jvmGone);
        System.out.println("[OrphanJvmIT] SIGKILL of the launcher: service port closed after "
            + portClosed + " ms, its JVM gone after " + jvmGone + " ms");
        assertTrue(millis < ORPHAN_LIMIT_MILLIS, "the orphan took " + millis + " ms to end");
        assertTrue(proxy.log().contains("is gone: exiting with it"), proxy.logTail());
      } finally {
        service.destroyForcibly();
      }
    }
  }

  @Test
  void sigtermToTheLauncherReachesTheServiceWhichDrainsFirst() throws Exception {
    try (ProxyProcess proxy = ProxyProcess.startAsUsersDo(work)) {
      ProcessHandle service = service(proxy);
      try {
        proxy.process().destroy(); // SIGTERM to the launcher
        service.onExit().get(120, TimeUnit.SECONDS);
        proxy.process().onExit().get(10, TimeUnit.SECONDS);
        assertTrue(refusesConnections(proxy.port()));
        assertTrue(proxy.log().contains("drained in"), "the service stopped as on its own "
            + "SIGTERM:\n" + proxy.logTail());
        assertFalse(proxy.log().contains("is gone: exiting with it"), proxy.logTail());
        String stopping = proxy.log().substring(proxy.log().indexOf("Shutting down"));
        assertTrue(stopping.contains("Left the cluster and closed in"), stopping);
        assertFalse(stopping.contains(" WARN "), "a normal stop warns of nothing:\n" + stopping);
      } finally {
        service.destroyForcibly();
      }
    }
  }
}
