package io.duet.cluster.impl;

import io.duet.cluster.Heartbeat;
import io.duet.cluster.Registry;
import io.duet.contract.Addresses;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Handler;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link Registry} over a heartbeat consumer, a periodic expiry check (eight times per timeout,
 * so that a silent instance goes at most an eighth of a timeout late) and a Hazelcast
 * membership listener. All changes are made on the registry's context; the
 * concurrent map lets readers on other threads see a consistent entry per instance.
 */
public final class RegistryImpl implements Registry {

  private static final Logger log = LoggerFactory.getLogger(RegistryImpl.class);

  private record Entry(InstanceInfo info, long seenNanos, String memberId) {
  }

  private static final Comparator<InstanceInfo> ORDER =
      Comparator.comparing(InstanceInfo::instanceId).thenComparingInt(InstanceInfo::dpRank);

  private final Vertx vertx;
  private final Context context;
  private final long timeoutNanos;
  private final Map<String, Entry> entries = new ConcurrentHashMap<>();
  /**
   * The instances in {@link #ORDER}, remade at every change: a proxy reads them several times
   * per request, and they change only with a heartbeat.
   */
  private volatile List<InstanceInfo> sorted = List.of();
  private final List<Handler<Change>> handlers = new CopyOnWriteArrayList<>();
  private final MessageConsumer<Object> consumer;
  private final MessageConsumer<Object> viewConsumer;
  private final long timerId;
  private final Runnable stopMemberListener;
  private volatile boolean closed;

  public RegistryImpl(Vertx vertx, long timeoutMillis) {
    this.vertx = Objects.requireNonNull(vertx, "vertx");
    this.context = vertx.getOrCreateContext();
    this.timeoutNanos = TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
    this.consumer = vertx.eventBus().consumer(Addresses.REGISTRY);
    consumer.handler(message -> onContext(() -> onHeartbeat(message)));
    this.viewConsumer = vertx.eventBus().consumer(Addresses.REGISTRY_VIEW, message -> {
      JsonArray view = new JsonArray();
      instances().forEach(info -> view.add(info.toJson()));
      message.reply(view);
    });
    long checkPeriod = Math.max(10, timeoutMillis / 8);
    this.timerId = vertx.setPeriodic(checkPeriod, id -> onContext(this::expire));
    this.stopMemberListener = ClusterMember.onMemberLeft(vertx,
        memberId -> onContext(() -> memberLeft(memberId))).orElse(() -> { });
  }

  @Override
  public Future<Void> ready() {
    return Future.all(consumer.completion(), viewConsumer.completion()).mapEmpty();
  }

  @Override
  public List<InstanceInfo> instances() {
    return sorted;
  }

  @Override
  public List<InstanceInfo> instances(Role role) {
    return sorted.stream().filter(info -> info.role() == role).toList();
  }

  @Override
  public Optional<InstanceInfo> get(String instanceId, int rank) {
    return Optional.ofNullable(entries.get(InstanceInfo.key(instanceId, rank))).map(Entry::info);
  }

  @Override
  public Registry onChange(Handler<Change> handler) {
    handlers.add(Objects.requireNonNull(handler, "handler"));
    return this;
  }

  @Override
  public Future<Void> close() {
    closed = true;
    vertx.cancelTimer(timerId);
    stopMemberListener.run();
    handlers.clear();
    return Future.all(consumer.unregister(), viewConsumer.unregister()).mapEmpty();
  }

  /** Every change happens on the registry's context, whichever thread reports it. */
  private void onContext(Runnable action) {
    if (Vertx.currentContext() == context) {
      action.run();
    } else {
      context.runOnContext(v -> action.run());
    }
  }

  private void onHeartbeat(Message<Object> message) {
    if (closed) {
      return;
    }
    InstanceInfo info;
    try {
      Object body = message.body();
      JsonObject json = body instanceof JsonObject object ? object : new JsonObject(body.toString());
      info = InstanceInfo.fromJson(json);
      Objects.requireNonNull(info.instanceId(), "instanceId");
      Objects.requireNonNull(info.role(), "role");
    } catch (RuntimeException e) {
      log.warn("Ignoring an invalid heartbeat: {}", e.toString());
      return;
    }
    String memberId = message.headers().get(Heartbeat.MEMBER_HEADER);
    Entry previous = entries.get(info.key());
    if (previous != null && info.heartbeatMillis() < previous.info().heartbeatMillis()) {
      return; // out of order
    }
    if (info.state() == InstanceInfo.State.LEFT) {
      if (previous != null) {
        remove(previous, "it left");
      }
      return;
    }
    if (previous != null && previous.memberId() != null && memberId != null
        && !previous.memberId().equals(memberId)) {
      log.warn("Instance {} is announced by two cluster members ({} and {})",
          info.key(), previous.memberId(), memberId);
    }
    entries.put(info.key(), new Entry(info, System.nanoTime(), memberId));
    sort();
    if (previous == null) {
      log.info("Instance {} ({}) joined, {}", info.key(), info.role().wireName(),
          info.state().wireName());
    } else if (previous.info().state() != info.state()) {
      log.info("Instance {} ({}) is {}", info.key(), info.role().wireName(),
          info.state().wireName());
    }
    fire(new Change(previous == null ? ChangeKind.ADDED : ChangeKind.UPDATED, info, null));
  }

  private void expire() {
    if (closed) {
      return;
    }
    long now = System.nanoTime();
    for (Entry entry : entries.values()) {
      if (now - entry.seenNanos() > timeoutNanos) {
        remove(entry, "no heartbeat for " + TimeUnit.NANOSECONDS.toMillis(now - entry.seenNanos())
            + " ms");
      }
    }
  }

  private void memberLeft(String memberId) {
    if (closed) {
      return;
    }
    for (Entry entry : entries.values()) {
      if (memberId.equals(entry.memberId())) {
        remove(entry, "cluster member " + memberId + " left");
      }
    }
  }

  private void sort() {
    sorted = entries.values().stream().map(Entry::info).sorted(ORDER).toList();
  }

  private void remove(Entry entry, String reason) {
    if (entries.remove(entry.info().key(), entry)) {
      sort();
      log.info("Instance {} ({}) removed: {}", entry.info().key(),
          entry.info().role().wireName(), reason);
      fire(new Change(ChangeKind.REMOVED, entry.info(), reason));
    }
  }

  private void fire(Change change) {
    for (Handler<Change> handler : handlers) {
      try {
        handler.handle(change);
      } catch (RuntimeException e) {
        log.warn("Registry change handler failed", e);
      }
    }
  }
}
