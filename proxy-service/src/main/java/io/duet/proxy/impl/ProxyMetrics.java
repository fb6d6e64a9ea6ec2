package io.duet.proxy.impl;

import io.duet.proxy.TtftStages;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * End-to-end request metrics as the client sees them. In Prometheus form:
 * <ul>
 *   <li>{@code duet_requests_total{endpoint,status}}: answered {@code /v1/*} requests, and
 *   event-bus completions under the endpoint {@code eventbus} with the status an HTTP request
 *   would have had; a stream that failed after its 200 header counts with the failure's status,
 *   a client that went away with 499;</li>
 *   <li>{@code duet_ttft_seconds}: request arrival to the first event carrying text or tokens;</li>
 *   <li>{@code duet_prefill_queue_seconds}, {@code duet_prefill_seconds},
 *   {@code duet_decode_queue_seconds} and {@code duet_kv_pull_seconds}: the stages of a request's
 *   way to its first decoded token that the instances measured ({@link TtftStages}), the first two
 *   recorded at its first token, the others at its end. With the first token streamed from the
 *   prefill result, the TTFT is the prefill stages plus the proxy and the event bus, and the
 *   decode stages come before the second token; without it, they are part of the TTFT too;</li>
 *   <li>{@code duet_tpot_seconds}: time per output token after the first, per request,
 *   {@code (e2e - ttft) / (completion_tokens - 1)} as {@code vllm bench serve} defines it;</li>
 *   <li>{@code duet_e2e_seconds}: request arrival to the last byte of a successful answer;</li>
 *   <li>{@code duet_requests_in_flight}: completions running now.</li>
 * </ul>
 * Thread-safe: the front ends of every event loop count here. One per registry, shared by the
 * HTTP and the event-bus front ends: Micrometer keeps the first gauge registered under a name, so
 * a second instance's in-flight count would not show.
 */
public final class ProxyMetrics {

  private final MeterRegistry registry;
  private final Timer ttft;
  private final Timer tpot;
  private final Timer e2e;
  private final Timer prefillQueue;
  private final Timer prefill;
  private final Timer decodeQueue;
  private final Timer kvPull;
  private final AtomicInteger inFlight = new AtomicInteger();
  private final Counter refusedConnections;

  public ProxyMetrics(MeterRegistry registry) {
    this.registry = registry;
    ttft = timer("duet.ttft", "Time to first token, from request arrival",
        Duration.ofMillis(1), Duration.ofMinutes(5));
    tpot = timer("duet.tpot", "Time per output token after the first",
        Duration.ofMillis(1), Duration.ofSeconds(10));
    e2e = timer("duet.e2e", "Request arrival to the end of a successful answer",
        Duration.ofMillis(1), Duration.ofMinutes(30));
    prefillQueue = timer("duet.prefill.queue", "Time a request waited in its prefill instance's "
        + "queue", Duration.ofMillis(1), Duration.ofMinutes(5));
    prefill = timer("duet.prefill", "Time a prefill instance spent computing a request's prompt",
        Duration.ofMillis(1), Duration.ofMinutes(5));
    decodeQueue = timer("duet.decode.queue", "Time a request waited on its decode instance "
        + "before its KV pull", Duration.ofMillis(1), Duration.ofMinutes(5));
    kvPull = timer("duet.kv.pull", "Time a decode instance spent pulling and importing a "
        + "request's KV", Duration.ofMillis(1), Duration.ofMinutes(5));
    Gauge.builder("duet.requests.in.flight", inFlight, AtomicInteger::get)
        .description("Completions running now").strongReference(true).register(registry);
    refusedConnections = Counter.builder("duet.http.connections.refused")
        .description("HTTP connections closed on accept: the proxy held its maximum already")
        .register(registry);
  }

  /** An HTTP connection was closed on accept, over the connection cap. */
  public void connectionRefused() {
    refusedConnections.increment();
  }

  private Timer timer(String name, String description, Duration min, Duration max) {
    return Timer.builder(name).description(description).publishPercentileHistogram()
        .minimumExpectedValue(min).maximumExpectedValue(max).register(registry);
  }

  void request(String endpoint, int status) {
    Counter.builder("duet.requests").description("Answered API requests")
        .tag("endpoint", endpoint).tag("status", Integer.toString(status)).register(registry)
        .increment();
  }

  void started() {
    inFlight.incrementAndGet();
  }

  void finished() {
    inFlight.decrementAndGet();
  }

  void ttft(long nanos) {
    ttft.record(nanos, TimeUnit.NANOSECONDS);
  }

  /** Records the prefill instance's stages, if reported. */
  void prefillStages(TtftStages stages) {
    record(prefillQueue, stages.prefillQueueMicros());
    record(prefill, stages.prefillMicros());
  }

  /** Records the decode instance's stages, if reported. */
  void decodeStages(TtftStages stages) {
    record(decodeQueue, stages.decodeQueueMicros());
    record(kvPull, stages.kvPullMicros());
  }

  private static void record(Timer timer, long micros) {
    if (micros >= 0) {
      timer.record(micros, TimeUnit.MICROSECONDS);
    }
  }

  void tpot(long nanos) {
    tpot.record(nanos, TimeUnit.NANOSECONDS);
  }

  void e2e(long nanos) {
    e2e.record(nanos, TimeUnit.NANOSECONDS);
  }
}
