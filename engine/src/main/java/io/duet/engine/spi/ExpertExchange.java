package io.duet.engine.spi;

import java.util.Arrays;

/**
 * One rank's end of the all-to-all of an expert-parallel group: the ranks whose engines split
 * a model's routed experts between them. In each mixture-of-experts layer every rank puts the
 * rows its tokens send to each rank's experts in that rank's {@link #outbox}, then
 * {@link #exchange} hands every rank the rows sent to it, has it {@linkplain Server#serve
 * compute} their results, and returns when the results of this rank's own rows are back in its
 * outboxes. All ranks of the group take part in every exchange, so a rank that has finished its
 * step (or had nothing to step) calls {@link #finishStep}, which keeps serving the others until
 * every rank has finished.
 *
 * <p>{@link #solo()} is the group of one: an engine that holds every expert. Implementations
 * for several ranks: {@code impl.LocalExpertExchange} (ranks in one JVM) and
 * {@code impl.SocketExpertExchange} (ranks in several JVMs, over TCP); the forward pass sees
 * only this interface. Used by one thread per rank
 * (its engine's stepping thread).
 */
public interface ExpertExchange {

  /**
   * Rows travelling from one rank to another in one exchange: {@link #count} rows of
   * {@link #width} floats, each with a tag saying what to compute (for the DeepSeek pass, the
   * destination's local expert index), and the results the destination writes back, one row of
   * {@link #width} floats each.
   */
  final class Mail {
    private int width;
    private float[] rows = new float[0];
    private float[] results = new float[0];
    private int[] tags = new int[0];
    private int count;
    private int layer;

    /**
     * Empties it for rows of {@code width} floats for the layer {@code layer}; the sender calls
     * it before adding rows.
     */
    public void clear(int layer, int width) {
      if (width != this.width) {
        this.width = width;
        rows = new float[0];
        results = new float[0];
        tags = new int[0];
      }
      this.layer = layer;
      this.count = 0;
    }

    /**
     * Adds {@code width} floats of {@code source} from {@code offset}, tagged {@code tag};
     * returns the row's index (where its result comes back).
     */
    public int add(float[] source, int offset, int tag) {
      if ((count + 1) * width > rows.length) {
        int capacity = Math.max(16, count * 2);
        rows = Arrays.copyOf(rows, capacity * width);
        results = Arrays.copyOf(results, capacity * width);
        tags = Arrays.copyOf(tags, capacity);
      }
      System.arraycopy(source, offset, rows, count * width, width);
      tags[count] = tag;
      return count++;
    }

    public int count() {
      return count;
    }

    /** The model layer the rows are for. */
    public int layer() {
      return layer;
    }

    public int width() {
      return width;
    }

    public int tag(int row) {
      return tags[row];
    }

    /** The rows, row {@code i} from {@code i * width}. */
    public float[] rows() {
      return rows;
    }

    /** The results, row {@code i} from {@code i * width}; written by the destination. */
    public float[] results() {
      return results;
    }
  }

  /** What a rank computes for the rows other ranks (and itself) send it. */
  @FunctionalInterface
  interface Server {
    /**
     * Fills the {@link Mail#results()} of every mail of {@code inbox} (indexed by sender; a mail
     * may be empty), on the rank's stepping thread with its compute threads.
     */
    void serve(Mail[] inbox);
  }

  /** The ranks of the group. */
  int ranks();

  /** This rank, in {@code [0, ranks())}. */
  int rank();

  /** The mail from this rank to {@code destination} in the coming exchange. */
  Mail outbox(int destination);

  /**
   * Sends every outbox, serves what the group sent this rank, and returns when the results of
   * this rank's rows are in its outboxes.
   *
   * @throws ExpertExchangeException when the group cannot complete it (a rank failed or
   *     left); the step fails. An in-JVM group is usable again for the next step, a networked
   *     one stays broken (see its implementation)
   */
  void exchange(Server server);

  /**
   * Ends this rank's step: serves the exchanges of ranks still stepping until every rank of the
   * group has finished its step. Called once per step, after its last {@link #exchange} (or
   * with none, for a step with nothing to compute).
   *
   * @throws ExpertExchangeException as {@link #exchange}
   */
  void finishStep(Server server);

  /** Nanoseconds this rank has spent in {@link #exchange} and {@link #finishStep}, in all. */
  long exchangeNanos();

  /** This rank stops for good (its engine closes): exchanges that need it fail from now on. */
  void leave();

  /**
   * Whether a rank of the group in another JVM is waiting for this one: it has begun a step
   * this rank has not joined (its frames are here), or its connection ended, which this rank's
   * next step reports. Ranks in one JVM learn of each other's steps from their stepping
   * coordinator instead, so an in-JVM group never has one waiting.
   */
  default boolean peerWaiting() {
    return false;
  }

  /**
   * Has {@code wake} called, from a channel thread, whenever a peer in another JVM starts
   * waiting for this rank ({@link #peerWaiting}) between its steps; it must return at once.
   */
  default void onPeerWaiting(Runnable wake) {
  }

  /**
   * Why the group can exchange no more, or null while it can: a group spanning JVMs stays
   * broken once an exchange failed (an in-JVM group starts afresh at the next step, so never).
   */
  default String failure() {
    return null;
  }

  /** The group of one rank, which serves its own rows at once. */
  static ExpertExchange solo() {
    return new ExpertExchange() {
      private final Mail[] inbox = {new Mail()};

      @Override
      public int ranks() {
        return 1;
      }

      @Override
      public int rank() {
        return 0;
      }

      @Override
      public Mail outbox(int destination) {
        if (destination != 0) {
          throw new IndexOutOfBoundsException("rank " + destination + " of a group of one");
        }
        return inbox[0];
      }

      @Override
      public void exchange(Server server) {
        server.serve(inbox);
      }

      @Override
      public void finishStep(Server server) {
      }

      @Override
      public long exchangeNanos() {
        return 0;
      }

      @Override
      public void leave() {
      }
    };
  }
}
