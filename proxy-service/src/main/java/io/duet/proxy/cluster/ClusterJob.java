package io.duet.proxy.cluster;

import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.KvHandle;
import io.duet.contract.PrefillResult;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.routing.DecodeClaim;
import io.duet.proxy.routing.DecodeTarget;
import io.duet.proxy.routing.RoutingRequest;

/**
 * The state of one request as it moves through the cluster. Confined to the event loop of the
 * {@link ClusterBackend} that runs it.
 */
final class ClusterJob {

  /** How a collaborator of the backend ends a request that failed. */
  @FunctionalInterface
  interface Failer {
    void fail(ClusterJob job, Failure failure, String message);
  }

  final CompletionJob completion;
  final ClusterStream stream;
  /** The request as routing sees it before prefill: its prompt tokens are an estimate. */
  final RoutingRequest routing;
  /** The prefill instances that refused or lost the request. */
  final Attempts<String> prefillAttempts = new Attempts<>();
  /** The decode targets that refused the request's current KV. */
  Attempts<DecodeTarget> decodeAttempts = new Attempts<>();
  /** The prefill instance asked last, once chosen. */
  InstanceInfo prefill;
  /** Numbers the prefill requests sent, so that a reply to an earlier one is known as such. */
  int prefillRequests;
  /** Whether the prompt was prefilled again because its first prefill instance was lost. */
  boolean prefilledAgain;
  /** The prefill instance's answer, whose KV handle names the request's lease, once prefilled. */
  PrefillResult prefilled;
  /**
   * Whether the last prefill request asked for the first token to come from its result (then
   * only decode targets that leave it out of their stream may take the request).
   */
  boolean firstTokenAsked;
  /**
   * Whether the prefill request asked for the KV to be streamed to the decode target claimed
   * with it ({@link io.duet.contract.PrefillRequest#streamKv}).
   */
  boolean streamKv;
  /** The handle of the KV being streamed, once the prefill instance started it; else null. */
  KvHandle streamedKv;
  /**
   * The end of a streamed KV's decode stream (its last event, or its failure) that came while
   * the prefill result was still to come, and waits for it: the result carries the first
   * token, which goes to the client before the decode target's events, and may tell that the
   * first token ended the request (the lease then ended before the decode target could pull
   * it, which is no failure). Null otherwise.
   */
  Runnable decodeEndAfterPrefill;
  /**
   * The prefill result whose first token went to the client, once one did: a prompt prefilled
   * again is decoded after that token, with that result's sampler state.
   */
  PrefillResult first;
  /** The request as routing sees it once prefilled, with its prompt's token count. */
  RoutingRequest decodeRouting;
  /** Numbers the decode slot claims made, so that a slot granted to a claim given up is known. */
  int claims;
  /** The claim of a request that waits in the proxy for a decode slot; null otherwise. */
  DecodeClaim waiting;
  /** The decode target asked last, which holds a slot for the request, once there is one. */
  DecodeTarget decode;
  /** Whether and when the decode target last showed that it is alive. */
  private boolean decodeHeard;
  private long decodeHeardNanos;
  long deadlineTimer;
  /** Fails a waiting request before its KV lease runs out; -1 when none is set. */
  long leaseTimer = -1;

  ClusterJob(CompletionJob completion, ClusterStream stream) {
    this.completion = completion;
    this.stream = stream;
    int maxTokens = completion.sampling().maxTokens();
    this.routing = completion.promptTokens().isEmpty()
        ? RoutingRequest.ofText(completion.requestId(), completion.model(), completion.prompt(),
            maxTokens)
        : RoutingRequest.ofTokens(completion.requestId(), completion.model(),
            completion.promptTokens(), maxTokens);
  }

  String requestId() {
    return completion.requestId();
  }

  /** The handle of the request's KV lease: streamed, or prefilled; null before either. */
  KvHandle kv() {
    return streamedKv != null ? streamedKv : prefilled == null ? null : prefilled.kv();
  }

  /** The decode target just showed that it is alive: it took the request, or sent an event. */
  void heardFromDecode() {
    decodeHeard = true;
    decodeHeardNanos = System.nanoTime();
  }

  /** Whether the decode target showed that it is alive within the last {@code millis}. */
  boolean heardFromDecodeWithin(long millis) {
    return decodeHeard && System.nanoTime() - decodeHeardNanos < millis * 1_000_000;
  }
}
