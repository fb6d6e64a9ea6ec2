package io.duet.proxy.cluster;

import io.duet.contract.Addresses;
import io.duet.contract.DecodeEvent;
import io.duet.contract.Failure;
import io.duet.contract.StreamCredit;
import io.vertx.core.Future;
import io.vertx.core.eventbus.EventBus;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.json.JsonObject;
import java.util.function.Consumer;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The decode streams of one backend: the decode events of all its requests arrive on one
 * address and go to the {@link ClusterStream} of their request by request id, so no request
 * registers anything on the event bus. As a stream consumes events, the relay grants its decode
 * target more ({@link StreamCredit}).
 */
final class StreamRelay {

  private static final Logger LOG = LoggerFactory.getLogger(StreamRelay.class);

  private final EventBus eventBus;
  private final String address;
  private final Function<String, ClusterJob> jobs;
  private final ClusterJob.Failer failer;
  private final Consumer<ClusterJob> ended;
  private MessageConsumer<JsonObject> events;

  /**
   * @param address where the decode events arrive (a {@code DecodeRequest}'s stream address)
   * @param jobs the running request of an id, or null
   * @param failer ends a request whose decode target sent a failure
   * @param ended ends a request whose last event was delivered
   */
  StreamRelay(EventBus eventBus, String address, Function<String, ClusterJob> jobs,
      ClusterJob.Failer failer, Consumer<ClusterJob> ended) {
    this.eventBus = eventBus;
    this.address = address;
    this.jobs = jobs;
    this.failer = failer;
    this.ended = ended;
  }

  String address() {
    return address;
  }

  /** Registers the address; completes once the cluster can route to it. */
  Future<Void> open() {
    events = eventBus.consumer(address, this::onEvent);
    return events.completion();
  }

  Future<Void> close() {
    return events == null ? Future.succeededFuture() : events.unregister();
  }

  /** Lets the decode target of {@code job} send {@code credits} more events. */
  void grant(ClusterJob job, int credits) {
    if (job.decode != null) {
      eventBus.send(Addresses.decodeControl(job.decode.instanceId(), job.decode.dpRank()),
          new StreamCredit(job.requestId(), credits).toJson());
    }
  }

  private void onEvent(Message<JsonObject> message) {
    DecodeEvent event;
    try {
      event = DecodeEvent.fromJson(message.body());
    } catch (IllegalArgumentException e) {
      LOG.warn("dropping a bad decode event: {}", e.getMessage());
      return;
    }
    ClusterJob job = jobs.apply(event.requestId());
    if (job == null) {
      return;
    }
    job.heardFromDecode();
    if (event.failure() != null) {
      failer.fail(job, Failure.parse(event.failure()), event.error());
      return;
    }
    job.stream.deliver(event);
    if (event.isLast()) {
      ended.accept(job);
    }
  }
}
