package io.duet.proxy.cluster;

import static io.duet.proxy.routing.Entries.MODEL;
import static io.duet.proxy.routing.Entries.decode;
import static io.duet.proxy.routing.Entries.prefill;
import static io.duet.service.ServiceTests.await;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.duet.contract.Failure;
import io.duet.contract.InstanceInfo;
import io.duet.contract.SamplingSpec;
import io.duet.proxy.CompletionJob;
import io.duet.proxy.routing.DecodeTarget;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class LivenessCheckTest {

  private static final ClusterStream.Control NO_CONTROL = new ClusterStream.Control() {
    @Override
    public void grant(ClusterStream stream, int credits) {
    }

    @Override
    public void cancel(ClusterStream stream) {
    }
  };

  private final Vertx vertx = Vertx.vertx();
  private final List<InstanceInfo> registry = new CopyOnWriteArrayList<>(List.of(
      prefill("p0", MODEL, 0), decode("d0", 8, 0, 0)));
  private final List<ClusterJob> jobs = new ArrayList<>();
  /** The messages of the failed jobs, by request id. */
  private final Map<String, String> failed = new TreeMap<>();

  @AfterEach
  void close() throws Exception {
    await(vertx.close());
  }

  private ClusterJob job(String id, String prefillId, String decodeId) {
    ClusterJob job = new ClusterJob(new CompletionJob(id, MODEL, "prompt",
        SamplingSpec.greedy(5)), new ClusterStream(id, 4, NO_CONTROL));
    job.prefill = prefillId == null ? null : prefill(prefillId, MODEL, 0);
    job.decode = decodeId == null ? null : new DecodeTarget(decodeId, 0);
    jobs.add(job);
    return job;
  }

  private LivenessCheck check(ClusterJob.Failer failer) {
    return new LivenessCheck(vertx, () -> registry, () -> jobs, failer, failer);
  }

  private void record(ClusterJob job, Failure failure, String message) {
    assertEquals(Failure.UNAVAILABLE, failure);
    failed.put(job.requestId(), message);
  }

  @Test
  void reportsTheRequestsWhoseCurrentInstanceLeftByTheirStage() {
    job("choosing", null, null);
    job("prefilling-on-live", "p0", null);
    job("prefilling-on-gone", "p-gone", null);
    job("decoding-on-live", "p-gone", "d0");
    job("decoding-on-gone", "p0", "d-gone");
    // its decode target pulls the KV as the prefill instance computes it
    job("streaming-from-gone", "p-gone", "d0").streamKv = true;
    Map<String, String> prefillLost = new TreeMap<>();

    new LivenessCheck(vertx, () -> registry, () -> jobs, this::record,
        (job, failure, message) -> prefillLost.put(job.requestId(), message)).run();

    assertEquals(Map.of(
        "decoding-on-gone", "the decode instance left the cluster mid-request"), failed);
    assertEquals(Map.of(
        "prefilling-on-gone", "the prefill instance left the cluster mid-request",
        "streaming-from-gone", "the prefill instance left the cluster mid-request"),
        prefillLost);
  }

  @Test
  void anInstanceThatIsDrainingIsStillLive() {
    registry.replaceAll(entry -> entry.withState(InstanceInfo.State.DRAINING));
    job("prefilling-on-draining", "p0", null);
    job("decoding-on-draining", "p0", "d0");
    check(this::record).run();
    assertEquals(Map.of(), failed);
  }

  @Test
  void aDecodeTargetIsLiveOnlyWhileItsRankIsListed() {
    job("rank-1", "p0", null).decode = new DecodeTarget("d0", 1);
    check(this::record).run();
    assertEquals(List.of("rank-1"), List.copyOf(failed.keySet()));
  }

  @Test
  void aDecodeTargetGoneFromTheRegistryThatJustSentAnEventIsAliveUntilItFallsSilent() {
    job("streaming-on-gone", "p0", "d-gone").heardFromDecode();
    new LivenessCheck(vertx, () -> registry, () -> jobs, this::record, this::record, 60_000)
        .run();
    assertEquals(Map.of(), failed, "it sent an event within the last minute");

    new LivenessCheck(vertx, () -> registry, () -> jobs, this::record, this::record, 0).run();
    assertEquals(List.of("streaming-on-gone"), List.copyOf(failed.keySet()),
        "silent for longer than the window");
  }

  @Test
  void checksPeriodicallyOnceStarted() throws Exception {
    job("decoding-on-d0", "p0", "d0");
    Promise<String> lost = Promise.promise();
    LivenessCheck check = check((job, failure, message) -> lost.tryComplete(message));
    vertx.runOnContext(v -> check.start());
    registry.removeIf(entry -> entry.instanceId().equals("d0"));
    assertEquals("the decode instance left the cluster mid-request", await(lost.future()));
    vertx.runOnContext(v -> check.stop());
  }
}
