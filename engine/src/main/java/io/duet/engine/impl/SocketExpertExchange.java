package io.duet.engine.impl;

import io.duet.engine.ExpertNetwork;
import io.duet.engine.spi.ExpertExchange;
import io.duet.engine.spi.ExpertExchangeException;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One rank's end of the all-to-all of an expert-parallel group whose ranks live in several JVMs:
 * a TCP connection to every other rank of the group (a full mesh, {@link ExpertWire}'s frames).
 * Each exchange is a round: every rank sends every other its rows for the layer (ROWS, possibly
 * none) or, once its step is over, DONE; reads one such frame from each; serves the rows it got;
 * sends each sender its results (RESULTS) and reads its own back. A round in which every rank
 * said DONE ends the step for all, as {@link LocalExpertExchange}'s barriers do. Frames carry the
 * step and layer, and a frame of another step or layer is a protocol error.
 *
 * <p>A reader thread per connection takes frames off the socket as they come, so that two ranks
 * writing to each other at once never block on full socket buffers, and a closed or broken
 * connection is seen at once.
 *
 * <p>Failures, bounded in time: a peer's frame that does not come within the exchange timeout,
 * a write the peer does not take within it, a connection that breaks or closes, a peer's FAIL
 * (its serving threw), or a rank's own serving throwing fail the exchange with an
 * {@link ExpertExchangeException}. The failing rank tells its peers (FAIL, best effort) and
 * closes its connections, so every rank of the group fails its step within the timeout, and
 * usually at once. The group then stays broken: frames of the failed round may still be in
 * flight, so no later exchange could trust the order of the stream; every later exchange fails at
 * once, and the ranks' JVMs must be restarted. (An in-JVM group starts afresh instead.)
 */
final class SocketExpertExchange implements ExpertExchange {

  private static final Logger LOG = LoggerFactory.getLogger(SocketExpertExchange.class);
  /** Checks every rank's writes in progress against its timeout. */
  private static final ScheduledExecutorService WATCHDOG =
      Executors.newSingleThreadScheduledExecutor(task -> {
        Thread thread = new Thread(task, "duet-expert-channel-watchdog");
        thread.setDaemon(true);
        return thread;
      });

  private final int ranks;
  private final int rank;
  private final int group;
  private final long timeoutNanos;
  /** Indexed by group rank; null at this rank's own index. */
  private final Peer[] peers;
  private final Mail[] outbox;
  /** Indexed by sender; this rank's own mail to itself is shared with its outbox. */
  private final Mail[] inbox;
  private final ExpertWire.Writer writer;
  private final float[][] scratch = {new float[0]};
  private final ScheduledFuture<?> watchdog;
  private long step;
  /**
   * Between the start of a step's first exchange and the end of its {@link #finishStep}: frames
   * arriving then are the step's own, and wake nobody.
   */
  private volatile boolean inStep;
  private volatile Runnable peerWaiting = () -> { };
  private volatile long nanos;
  private volatile String broken;

  private SocketExpertExchange(int ranks, int rank, int group, Peer[] peers,
      ExpertNetwork network) {
    this.ranks = ranks;
    this.rank = rank;
    this.group = group;
    this.peers = peers;
    this.timeoutNanos = network.exchangeTimeout().toNanos();
    this.writer = new ExpertWire.Writer(network.maxFrameBytes());
    this.outbox = new Mail[ranks];
    this.inbox = new Mail[ranks];
    for (int r = 0; r < ranks; r++) {
      outbox[r] = new Mail();
      inbox[r] = r == rank ? outbox[r] : new Mail();
    }
    for (Peer peer : peers) {
      if (peer != null) {
        peer.startReading(this, network.maxFrameBytes());
      }
    }
    long period = Math.max(10, network.exchangeTimeout().toMillis() / 4);
    this.watchdog = WATCHDOG.scheduleAtFixedRate(this::checkWrites, period, period,
        TimeUnit.MILLISECONDS);
  }

  /**
   * Opens this JVM's ranks {@code members} (group ranks, ascending) of group {@code group} of
   * {@code ranks} ranks: binds each one's port, connects it to every other rank of the group
   * (the higher rank of a pair connects, the lower accepts, both retrying until the connect
   * timeout), and returns their ends in the order of {@code members}.
   *
   * @throws ExpertExchangeException when the mesh is not complete within the connect timeout, a
   *     port cannot be bound, or a peer fails the handshake
   */
  static List<ExpertExchange> open(ExpertNetwork network, int group, int ranks,
      List<Integer> members) {
    List<ServerSocket> listeners = new ArrayList<>();
    List<CompletableFuture<Peer[]>> meshes = new ArrayList<>();
    List<ExpertExchange> ends = new ArrayList<>();
    boolean opened = false;
    try {
      // Every port first, so that this JVM's ranks find each other's whatever order they run.
      for (int member : members) {
        InetSocketAddress own = new InetSocketAddress(network.bindHost(),
            network.rankAddresses().get(group * ranks + member).getPort());
        ServerSocket listener = new ServerSocket();
        listeners.add(listener);
        listener.setReuseAddress(true);
        try {
          listener.bind(own, ranks);
        } catch (IOException e) {
          throw new IOException("rank " + member + " of group " + group + " cannot listen on "
              + own + ": " + e.getMessage(), e);
        }
      }
      long deadline = System.nanoTime() + network.connectTimeout().toNanos();
      for (int i = 0; i < members.size(); i++) {
        int member = members.get(i);
        ServerSocket listener = listeners.get(i);
        meshes.add(CompletableFuture.supplyAsync(
            () -> Mesh.connect(network, group, ranks, member, listener, deadline),
            task -> new Thread(task, "duet-expert-mesh-" + group + "-" + member).start()));
      }
      for (int i = 0; i < members.size(); i++) {
        ends.add(new SocketExpertExchange(ranks, members.get(i), group, meshes.get(i).get(),
            network));
      }
      LOG.info("expert-parallel group {}: ranks {} of {} connected to their peers over TCP",
          group, members, ranks);
      opened = true;
      return ends;
    } catch (IOException e) {
      throw new ExpertExchangeException(e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ExpertExchangeException("interrupted while connecting the expert-parallel "
          + "group");
    } catch (ExecutionException e) {
      throw e.getCause() instanceof ExpertExchangeException failure ? failure
          : new ExpertExchangeException("connecting the expert-parallel group failed: "
              + e.getCause());
    } finally {
      listeners.forEach(Mesh::closeQuietly);
      if (!opened) {
        ends.forEach(ExpertExchange::leave);
        // the connections of ranks whose siblings failed, now or once they are made
        for (CompletableFuture<Peer[]> mesh : meshes) {
          mesh.thenAccept(peers -> Arrays.stream(peers).filter(p -> p != null)
              .forEach(Peer::close));
        }
      }
    }
  }

  @Override
  public int ranks() {
    return ranks;
  }

  @Override
  public int rank() {
    return rank;
  }

  @Override
  public Mail outbox(int destination) {
    return outbox[destination];
  }

  @Override
  public void exchange(Server server) {
    long start = System.nanoTime();
    inStep = true;
    try {
      round(server, false);
    } finally {
      nanos += System.nanoTime() - start;
    }
  }

  @Override
  public void finishStep(Server server) {
    long start = System.nanoTime();
    inStep = true;
    try {
      for (Mail mail : outbox) {
        mail.clear(-1, mail.width());
      }
      while (!round(server, true)) {
        // served the ranks still stepping; the next round may find them all done
      }
      step++;
    } finally {
      // Every frame of the step has been read (its last round had one from each peer), so
      // whatever a peer sends from now on is of the next step: see frameArrived.
      inStep = false;
      nanos += System.nanoTime() - start;
    }
  }

  @Override
  public boolean peerWaiting() {
    if (broken != null) {
      return false; // every step fails at once now: nothing to wake for
    }
    for (Peer peer : peers) {
      if (peer != null && !peer.frames.isEmpty()) {
        return true;
      }
    }
    return false;
  }

  @Override
  public String failure() {
    return broken;
  }

  @Override
  public void onPeerWaiting(Runnable wake) {
    peerWaiting = wake;
  }

  /**
   * A reader queued a frame (or the end of its connection) from {@code peer}. Outside a step it
   * is a peer's next step, or its end, which this rank must join: wake it. The rank clears
   * {@link #inStep} before it next looks at {@link #peerWaiting}, so a frame queued after that
   * look is seen here as outside a step. A frame that is no longer queued was the last of the
   * step that just ended, taken between the reader's queuing and this call: it wakes nobody.
   */
  private void frameArrived(Peer peer) {
    if (!inStep && !peer.frames.isEmpty()) {
      peerWaiting.run();
    }
  }

  @Override
  public long exchangeNanos() {
    return nanos;
  }

  @Override
  public void leave() {
    watchdog.cancel(false);
    if (broken == null) {
      broken = "rank " + rank + " of the expert-parallel group has closed: its experts are gone";
      // not the rank thread's writer, which a step under way may be using
      ExpertWire.Writer bye = new ExpertWire.Writer(ExpertWire.HEADER_BYTES + Integer.BYTES);
      for (Peer peer : peers) {
        if (peer != null) {
          peer.sendQuietly(out -> bye.empty(out, ExpertWire.BYE, step));
        }
      }
    }
    closeAll();
  }

  /**
   * One round of the all-to-all, as this rank's step needs it ({@code done}: it has finished
   * and only serves).
   *
   * @return whether every rank was done, which ends the step
   */
  private boolean round(Server server, boolean done) {
    failIfBroken();
    boolean allDone = done;
    for (int p = 0; p < ranks; p++) {
      if (p != rank) {
        Mail mail = outbox[p];
        send(p, out -> {
          if (done) {
            writer.empty(out, ExpertWire.DONE, step);
          } else {
            writer.rows(out, step, mail);
          }
        });
      }
    }
    for (int p = 0; p < ranks; p++) {
      if (p == rank) {
        continue;
      }
      ExpertWire.Frame frame = take(p, done ? -1 : outbox[rank].layer());
      if (frame.type() == ExpertWire.DONE) {
        inbox[p].clear(-1, inbox[p].width());
      } else if (frame.type() == ExpertWire.ROWS) {
        allDone = false;
        frame.readRows(inbox[p], scratch);
      } else {
        throw fail("rank " + p + " sent frame type " + frame.type() + " where rows were due");
      }
    }
    if (allDone) {
      return true;
    }
    try {
      server.serve(inbox);
    } catch (RuntimeException | Error e) {
      fail("rank " + rank + " failed serving its experts: " + e);
      throw e;
    }
    for (int p = 0; p < ranks; p++) {
      if (p != rank) {
        Mail mail = inbox[p];
        send(p, out -> writer.results(out, step, mail));
      }
    }
    for (int p = 0; p < ranks; p++) {
      if (p == rank) {
        continue;
      }
      ExpertWire.Frame frame = take(p, outbox[p].layer());
      if (frame.type() != ExpertWire.RESULTS) {
        throw fail("rank " + p + " sent frame type " + frame.type() + " where results were due");
      }
      try {
        frame.readResults(outbox[p]);
      } catch (IOException e) {
        throw fail("rank " + p + " sent bad results: " + e.getMessage());
      }
    }
    return false;
  }

  private void send(int p, Peer.Write write) {
    try {
      peers[p].send(write);
    } catch (IOException e) {
      String reason = peers[p].failure();
      throw fail(reason != null ? reason
          : "sending to rank " + p + " of the expert-parallel group failed: " + e.getMessage());
    }
  }

  /**
   * The next frame from rank {@code p}, of this step and (unless it is DONE, or {@code layer} is
   * -1) of layer {@code layer}.
   */
  private ExpertWire.Frame take(int p, int layer) {
    Object next;
    try {
      next = peers[p].frames.poll(timeoutNanos, TimeUnit.NANOSECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw fail("rank " + rank + " was interrupted in the expert exchange");
    }
    if (next == null) {
      throw fail("rank " + p + " of the expert-parallel group sent nothing within "
          + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms");
    }
    if (next instanceof String reason) {
      throw fail(reason);
    }
    ExpertWire.Frame frame = (ExpertWire.Frame) next;
    if (frame.type() == ExpertWire.FAIL) {
      throw fail(frame.reason());
    }
    if (frame.step() != step || (layer >= 0 && frame.type() != ExpertWire.DONE
        && frame.layer() != layer)) {
      throw fail("rank " + p + " is out of step: its frame is for step " + frame.step()
          + ", layer " + frame.layer() + "; this rank is at step " + step + ", layer " + layer);
    }
    return frame;
  }

  private void failIfBroken() {
    String reason = broken;
    if (reason != null) {
      throw new ExpertExchangeException(reason);
    }
  }

  /**
   * Breaks the group: tells the peers why (best effort) and closes every connection, so that
   * they fail their exchange at once too.
   */
  private ExpertExchangeException fail(String reason) {
    if (broken == null) {
      broken = reason;
      LOG.warn("expert-parallel group {} rank {}: the exchange failed, the group is broken: {}",
          group, rank, reason);
      for (Peer peer : peers) {
        if (peer != null) {
          peer.sendQuietly(out -> writer.fail(out, step, reason));
        }
      }
      closeAll();
    }
    return new ExpertExchangeException(broken);
  }

  private void closeAll() {
    watchdog.cancel(false);
    for (Peer peer : peers) {
      if (peer != null) {
        peer.close();
      }
    }
  }

  private void checkWrites() {
    long now = System.nanoTime();
    for (Peer peer : peers) {
      if (peer != null) {
        peer.abortIfWritingSince(now - timeoutNanos,
            "rank " + peer.rank + " of the expert-parallel group took nothing for "
                + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms");
      }
    }
  }

  /** The connection to one other rank of the group. */
  static final class Peer {

    /** Writes a frame to a peer's stream. */
    @FunctionalInterface
    interface Write {
      void to(OutputStream out) throws IOException;
    }

    final int rank;
    private final Socket socket;
    private final OutputStream out;
    /** Frames read, or a String saying why no more will come. */
    final BlockingQueue<Object> frames = new LinkedBlockingQueue<>();
    /** Held while a frame is written: the rank's thread and a closing one may both write. */
    private final ReentrantLock writing = new ReentrantLock();
    /** When the write under way began (nanoTime), 0 when none is. */
    private volatile long writingSince;
    private volatile String failure;

    Peer(int rank, Socket socket) throws IOException {
      this.rank = rank;
      this.socket = socket;
      this.out = socket.getOutputStream();
    }

    void startReading(SocketExpertExchange owner, int maxFrameBytes) {
      Thread reader = new Thread(() -> read(owner, maxFrameBytes),
          "duet-expert-channel-" + owner.group + "-" + owner.rank + "-from-" + rank);
      reader.setDaemon(true);
      reader.start();
    }

    private void read(SocketExpertExchange owner, int maxFrameBytes) {
      String reason;
      try {
        DataInputStream in = new DataInputStream(new BufferedInputStream(
            socket.getInputStream(), 64 << 10));
        while (true) {
          ExpertWire.Frame frame = ExpertWire.read(in, maxFrameBytes);
          if (frame.type() == ExpertWire.BYE) {
            reason = "rank " + rank + " of the expert-parallel group has closed: its experts "
                + "are gone";
            break;
          }
          frames.add(frame);
          owner.frameArrived(this);
        }
      } catch (EOFException e) {
        reason = "the connection to rank " + rank + " of the expert-parallel group closed "
            + "without a word: its JVM is gone, or the network cut it";
      } catch (IOException e) {
        reason = failure != null ? failure : "the connection to rank " + rank
            + " of the expert-parallel group broke: " + e.getMessage();
      }
      frames.add(reason);
      owner.frameArrived(this);
      LOG.debug("rank {} stops reading from rank {}: {}", owner.rank, rank, reason);
    }

    void send(Write write) throws IOException {
      writing.lock();
      try {
        write(write);
      } finally {
        writing.unlock();
      }
    }

    /**
     * Sends a last word unless the connection is closed or a write is under way (which the
     * closing that follows cuts short anyway): never waits for a peer that does not read.
     */
    void sendQuietly(Write write) {
      if (socket.isClosed() || !writing.tryLock()) {
        return;
      }
      try {
        write(write);
      } catch (IOException e) {
        // it is being torn down anyway
      } finally {
        writing.unlock();
      }
    }

    private void write(Write write) throws IOException {
      writingSince = System.nanoTime();
      try {
        write.to(out);
      } finally {
        writingSince = 0;
      }
    }

    /** Closes the connection when a write has been under way since before {@code since}. */
    void abortIfWritingSince(long since, String reason) {
      long began = writingSince;
      if (began != 0 && began - since < 0) {
        failure = reason;
        close();
      }
    }

    String failure() {
      return failure;
    }

    void close() {
      Mesh.closeQuietly(socket);
    }
  }

  /** Forming one rank's connections: connecting to the lower ranks, accepting the higher. */
  private static final class Mesh {

    private static final long RETRY_MILLIS = 100;
    private static final int HANDSHAKE_MILLIS = 10_000;

    static Peer[] connect(ExpertNetwork network, int group, int ranks, int self,
        ServerSocket listener, long deadline) {
      Peer[] peers = new Peer[ranks];
      try {
        for (int p = 0; p < self; p++) {
          peers[p] = dial(network, group, ranks, self, p, deadline);
        }
        for (int accepted = 0; accepted < ranks - 1 - self; ) {
          Peer peer = accept(network, group, ranks, self, listener, deadline, peers);
          if (peer != null) {
            peers[peer.rank] = peer;
            accepted++;
          }
        }
        return peers;
      } catch (RuntimeException | IOException e) {
        Arrays.stream(peers).filter(p -> p != null).forEach(Peer::close);
        throw e instanceof ExpertExchangeException failure ? failure
            : new ExpertExchangeException("rank " + self + " of expert-parallel group " + group
                + " could not connect to its peers: " + e.getMessage());
      }
    }

    /** Connects to rank {@code to}, retrying until it listens or the deadline passes. */
    private static Peer dial(ExpertNetwork network, int group, int ranks, int self, int to,
        long deadline) throws IOException {
      InetSocketAddress address = network.rankAddresses().get(group * ranks + to);
      while (true) {
        Socket socket = new Socket();
        try {
          socket.connect(address, (int) Math.max(1, Math.min(HANDSHAKE_MILLIS,
              remainingMillis(deadline))));
          socket.setSoTimeout(HANDSHAKE_MILLIS);
          byte[] hello = ExpertWire.hello(ranks, group, self, to);
          socket.getOutputStream().write(hello);
          byte[] nonce = ExpertWire.readExactly(socket.getInputStream(), ExpertWire.NONCE_BYTES);
          byte[] proof = ExpertWire.readExactly(socket.getInputStream(), ExpertWire.MAC_BYTES);
          if (!ExpertWire.matches(ExpertWire.proof(network.secret(), "acceptor", hello, nonce),
              proof)) {
            closeQuietly(socket);
            throw new ExpertExchangeException("rank " + to + " of expert-parallel group "
                + group + " at " + address + " did not prove the expert channel's secret");
          }
          socket.getOutputStream().write(ExpertWire.proof(network.secret(), "connector", hello,
              nonce));
          return established(to, socket);
        } catch (IOException e) {
          closeQuietly(socket);
          if (remainingMillis(deadline) <= RETRY_MILLIS) {
            throw new IOException("rank " + to + " at " + address + " did not answer within "
                + "the connect timeout: " + e.getMessage(), e);
          }
          try {
            // the peer's JVM is still starting: poll its port
            Thread.sleep(RETRY_MILLIS);
          } catch (InterruptedException interrupted) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while connecting to rank " + to);
          }
        }
      }
    }

    /**
     * Accepts one connection and checks its handshake.
     *
     * @return the peer, or null for a connection that failed the handshake (closed, logged)
     */
    private static Peer accept(ExpertNetwork network, int group, int ranks, int self,
        ServerSocket listener, long deadline, Peer[] connected) throws IOException {
      long remaining = remainingMillis(deadline);
      Socket socket;
      try {
        if (remaining <= 0) {
          throw new SocketTimeoutException();
        }
        listener.setSoTimeout((int) Math.min(Integer.MAX_VALUE, remaining));
        socket = listener.accept();
      } catch (SocketTimeoutException e) {
        throw new SocketTimeoutException("the ranks above " + self + " did not all connect "
            + "within the connect timeout of " + network.connectTimeout().toMillis() + " ms");
      }
      try {
        socket.setSoTimeout(HANDSHAKE_MILLIS);
        byte[] hello = ExpertWire.readExactly(socket.getInputStream(), ExpertWire.HELLO_BYTES);
        ExpertWire.Hello h = ExpertWire.parseHello(hello);
        if (h.groupSize() != ranks || h.group() != group || h.to() != self || h.from() <= self
            || h.from() >= ranks || connected[h.from()] != null) {
          throw new IOException("a handshake for " + h + " reached rank " + self
              + " of group " + group + " of " + ranks + " ranks");
        }
        byte[] nonce = ExpertWire.nonce();
        socket.getOutputStream().write(nonce);
        socket.getOutputStream().write(ExpertWire.proof(network.secret(), "acceptor", hello,
            nonce));
        byte[] proof = ExpertWire.readExactly(socket.getInputStream(), ExpertWire.MAC_BYTES);
        if (!ExpertWire.matches(ExpertWire.proof(network.secret(), "connector", hello, nonce),
            proof)) {
          throw new IOException("rank " + h.from() + " did not prove the expert channel's "
              + "secret");
        }
        return established(h.from(), socket);
      } catch (IOException e) {
        LOG.warn("rank {} of expert-parallel group {} refused a connection from {}: {}", self,
            group, socket.getRemoteSocketAddress(), e instanceof EOFException
                ? "it closed during the handshake" : e.getMessage());
        closeQuietly(socket);
        return null;
      }
    }

    private static Peer established(int rank, Socket socket) throws IOException {
      socket.setSoTimeout(0);
      socket.setTcpNoDelay(true);
      socket.setKeepAlive(true);
      return new Peer(rank, socket);
    }

    private static long remainingMillis(long deadline) {
      return TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
    }

    static void closeQuietly(java.io.Closeable closeable) {
      try {
        closeable.close();
      } catch (IOException e) {
        // nothing more to free
      }
    }
  }
}
