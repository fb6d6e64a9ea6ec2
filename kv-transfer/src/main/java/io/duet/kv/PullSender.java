package io.duet.kv;

/**
 * Sends one pull's chunks as they become ready: every chunk computed and not sent yet, then,
 * once the KV is computed and every chunk sent, the end; meanwhile it waits for the lease's next
 * change. A lease that ends during the pull ends it with the reason an ERROR frame gives. What
 * the KV server's TCP connections and the same-JVM handoff share; the sink says where chunks go.
 * Runs on the sink's context.
 */
final class PullSender {

  /** Where a pull's chunks go. */
  interface Sink {
    /**
     * Sends chunk {@code index}; false when the sink must drain before it takes more, in which
     * case it calls {@link PullSender#resume} once it has.
     */
    boolean send(int index);

    /** Every chunk went: the stream ends with {@code first} (null: KV computed before it was leased). */
    void end(FirstToken first);

    /** The lease ended during the pull, for the reason {@code error} gives ("CODE: message"). */
    void refuse(String error);

    /** Runs {@code task} on the sink's context: a lease changes on the engine's thread. */
    void execute(Runnable task);
  }

  private final LeaseTable.Pull pull;
  private final Sink sink;
  private final boolean[] sent;
  private int sentCount;
  /** Whether it waits for the lease to change (more KV computed). */
  private boolean awaitingChange;
  private boolean stopped;

  PullSender(LeaseTable.Pull pull, Sink sink) {
    this.pull = pull;
    this.sink = sink;
    this.sent = new boolean[pull.export().chunkCount()];
  }

  /** Sends what is ready; ends the stream, or waits for the sink to drain or the lease to change. */
  void resume() {
    KvStreamWriter export = pull.export();
    while (!stopped) {
      if (!pull.isLive()) {
        stopped = true;
        sink.refuse(pull.endedAtFirstToken()
            ? KvTransferServer.FIRST_TOKEN_ENDED + ": the request's first token ended it"
            : "LEASE_ENDED: the KV lease ended (cancelled, expired, or its prefill failed) "
                + "during the pull");
        return;
      }
      // Read before the chunks' readiness: once it says computed, every chunk is ready.
      long changes = pull.changes();
      boolean computing = pull.isComputing();
      boolean sentSome = false;
      // Chunks become ready out of index order (a prompt prefilled in several passes).
      for (int index = 0; index < sent.length && pull.isLive(); index++) {
        if (sent[index] || !export.isReady(index)) {
          continue;
        }
        sent[index] = true;
        sentCount++;
        sentSome = true;
        if (!sink.send(index)) {
          return;
        }
        if (stopped) { // the sink failed and stopped the pull
          return;
        }
      }
      if (sentSome) {
        continue; // more may have been computed meanwhile
      }
      if (computing || sentCount < sent.length) {
        awaitChange(changes);
        return;
      }
      stopped = true;
      sink.end(pull.first());
      return;
    }
  }

  private void awaitChange(long seen) {
    awaitingChange = true;
    pull.awaitChange(seen, () -> sink.execute(() -> {
      if (awaitingChange && !stopped) {
        awaitingChange = false;
        resume();
      }
    }));
  }

  /** Sends nothing more (the pull ended some other way). Idempotent. */
  void stop() {
    stopped = true;
    awaitingChange = false;
  }
}
