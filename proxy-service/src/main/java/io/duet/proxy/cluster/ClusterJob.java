package io.duet.proxy.cluster;

import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.routing.DecodeTarget;

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
  /**
   * The reference deployment balances prefill by in-flight prompt length; before the prefill
   * instance has tokenized, characters / 4 stands in for tokens.
   */
  final long estimatedPromptTokens;
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
  /** The decode target asked last, once there is one. */
  DecodeTarget decode;
  /** Names the KV lease on the prefill instance, once prefilled. */
  String transferId;
  long deadlineTimer;

  ClusterJob(CompletionJob completion, ClusterStream stream) {
    this.completion = completion;
    this.stream = stream;
    // Before the prefill instance has tokenized a text, characters / 4 stands in for tokens.
    this.estimatedPromptTokens = completion.promptTokens().isEmpty()
        ? Math.max(1, completion.prompt().length() / 4) : completion.promptTokens().size();
  }

  String requestId() {
    return completion.requestId();
  }
}
