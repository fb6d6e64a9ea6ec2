package io.duet.prefill.impl;

import io.duet.engine.KvExport;
import io.duet.engine.Sequence;

/** Prefilled KV held for a decode instance; freed by its release or by expiry. */
final class Lease {

  final String transferId;
  final String requestId;
  final Sequence sequence;
  final KvExport export;
  long expiresAtMillis;
  long timerId;

  Lease(String transferId, String requestId, Sequence sequence, KvExport export) {
    this.transferId = transferId;
    this.requestId = requestId;
    this.sequence = sequence;
    this.export = export;
  }
}
