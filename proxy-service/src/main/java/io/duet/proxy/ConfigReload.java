package io.duet.proxy;

import io.duet.cluster.DuetConfig;
import io.duet.cluster.InvalidConfigException;
import io.duet.cluster.Setting;
import io.duet.cluster.Settings;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.vertx.core.AsyncResult;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.file.FileProps;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Re-reads the proxy's configuration and applies, without a restart, the settings that may
 * change at run time ({@link #RELOADABLE}: the routing policies and their parameters, the cap on
 * this proxy's requests per decode target, the bound of its queue). {@code POST /admin/reload}
 * and a change of the configuration file ({@link #watch}) trigger it.
 *
 * <p>A reload loads the configuration the way the proxy started (defaults, file, environment,
 * flags), checked whole, and applies it in one step that makes the new policies before it
 * replaces anything: a configuration that is invalid, or names an unknown policy or a parameter a
 * policy does not take, is refused with its problems, and the running settings stay. Requests are
 * not disturbed: those in flight keep their decode slots, waiting ones their places. Other
 * settings that changed are reported as taking effect at the next start. Reloads run one after
 * the other. Each is logged (what changed, old and new value per key, or why it was refused) and
 * counted in {@code duet_config_reloads_total{outcome="applied"|"refused"}}.
 */
public final class ConfigReload {

  /** The settings a reload applies. */
  public static final List<Setting<?>> RELOADABLE = List.of(Settings.PROXY_PREFILL_POLICY,
      Settings.PROXY_PREFILL_POLICY_PARAMS, Settings.PROXY_DECODE_POLICY,
      Settings.PROXY_DECODE_POLICY_PARAMS, Settings.PROXY_DECODE_RANK_CAP,
      Settings.PROXY_QUEUE_SIZE);

  private static final Logger LOG = LoggerFactory.getLogger(ConfigReload.class);

  /** A setting a reload changed, with its old and new values as a YAML file writes them. */
  public record Change(String key, String from, String to) {

    @Override
    public String toString() {
      return key + " " + from + " -> " + to;
    }
  }

  /**
   * What a reload did.
   *
   * @param changes the settings it changed (none when it was refused)
   * @param restartRequired the keys of other settings that differ from those the proxy started
   *     with, which take effect at its next start
   * @param errors why it was refused; empty when it was applied
   */
  public record Outcome(List<Change> changes, List<String> restartRequired,
      List<String> errors) {

    public boolean applied() {
      return errors.isEmpty();
    }

    /** The body of the reply to {@code POST /admin/reload}. */
    public JsonObject toJson() {
      JsonObject json = new JsonObject().put("status", applied() ? "applied" : "refused");
      if (!applied()) {
        return json.put("errors", new JsonArray(errors));
      }
      JsonArray changed = new JsonArray();
      changes.forEach(change -> changed.add(new JsonObject().put("key", change.key())
          .put("old", change.from()).put("new", change.to())));
      return json.put("changes", changed).put("restartRequired", new JsonArray(restartRequired));
    }
  }

  private final Vertx vertx;
  private final Supplier<Future<DuetConfig>> loader;
  private final DuetConfig started;
  private final Consumer<DuetConfig> apply;
  private final Counter applied;
  private final Counter refused;
  /** The settings in force; changed by one reload at a time. */
  private DuetConfig current;
  /** The end of the last reload; the next starts after it. Guarded by {@code this}. */
  private Future<Outcome> last = Future.succeededFuture();

  /**
   * @param loader loads the configuration as the proxy did at start (the instance id may be
   *     unset: the running one is kept)
   * @param started the configuration the proxy started with, in force until a reload
   * @param apply puts the {@link #RELOADABLE} settings of a configuration in force, or throws an
   *     IllegalArgumentException and changes nothing
   */
  public ConfigReload(Vertx vertx, Supplier<Future<DuetConfig>> loader, DuetConfig started,
      Consumer<DuetConfig> apply, MeterRegistry metrics) {
    this.vertx = Objects.requireNonNull(vertx, "vertx");
    this.loader = Objects.requireNonNull(loader, "loader");
    this.started = Objects.requireNonNull(started, "started");
    this.current = started;
    this.apply = Objects.requireNonNull(apply, "apply");
    this.applied = reloads("applied", metrics);
    this.refused = reloads("refused", metrics);
  }

  private static Counter reloads(String outcome, MeterRegistry metrics) {
    return Counter.builder("duet.config.reloads")
        .description("Configuration reloads of the proxy, by outcome")
        .tag("outcome", outcome).register(metrics);
  }

  /**
   * Reloads once the reloads before it are done. Never fails: a refused reload is an outcome.
   *
   * @param trigger what asked for it, for the log
   */
  public synchronized Future<Outcome> reload(String trigger) {
    last = last.transform(previous -> loader.get()
        .transform(loaded -> Future.succeededFuture(reloadWith(trigger, loaded))));
    return last;
  }

  private Outcome reloadWith(String trigger, AsyncResult<DuetConfig> loaded) {
    if (loaded.failed()) {
      return refusal(trigger, loaded.cause());
    }
    DuetConfig next = loaded.result().isSet(Settings.INSTANCE_ID) ? loaded.result()
        : loaded.result().with(Settings.INSTANCE_ID, started.get(Settings.INSTANCE_ID));
    List<Change> changes = new ArrayList<>();
    List<String> restartRequired = new ArrayList<>();
    for (Setting<?> setting : Settings.all()) {
      if (RELOADABLE.contains(setting)) {
        String from = text(setting, current);
        String to = text(setting, next);
        if (!from.equals(to)) {
          changes.add(new Change(setting.key(), from, to));
        }
      } else if (!text(setting, started).equals(text(setting, next))) {
        restartRequired.add(setting.key());
      }
    }
    if (!changes.isEmpty()) {
      try {
        apply.accept(next);
      } catch (IllegalArgumentException e) {
        return refusal(trigger, e);
      }
      current = next;
    }
    applied.increment();
    LOG.info("configuration reloaded ({}): {}{}", trigger, changes.isEmpty() ? "no change"
        : changes.stream().map(Change::toString).collect(Collectors.joining(", ")),
        restartRequired.isEmpty() ? ""
            : "; changed, in force at the next start: " + String.join(", ", restartRequired));
    return new Outcome(changes, restartRequired, List.of());
  }

  private Outcome refusal(String trigger, Throwable error) {
    List<String> errors = error instanceof InvalidConfigException invalid
        ? invalid.problems().stream().map(InvalidConfigException.Problem::toString).toList()
        : List.of(String.valueOf(error.getMessage()));
    refused.increment();
    LOG.warn("configuration reload ({}) refused, the running settings stay: {}", trigger,
        String.join("; ", errors));
    return new Outcome(List.of(), List.of(), errors);
  }

  /** A setting's value in {@code config} as a YAML file writes it (JSON for a map). */
  private static <T> String text(Setting<T> setting, DuetConfig config) {
    return String.valueOf(setting.type().encode(config.get(setting)));
  }

  /**
   * Reloads whenever {@code file} changes: its modification time or size, checked every
   * {@code periodMillis}. A file that cannot be read is skipped until it can.
   *
   * @return the timer, for {@link Vertx#cancelTimer}
   */
  public long watch(Path file, long periodMillis) {
    String path = file.toAbsolutePath().normalize().toString();
    AtomicReference<FileProps> seen = new AtomicReference<>();
    try {
      seen.set(vertx.fileSystem().propsBlocking(path));
    } catch (RuntimeException e) {
      LOG.warn("cannot read {} yet: {}", path, e.getMessage());
    }
    return vertx.setPeriodic(periodMillis, t -> vertx.fileSystem().props(path).onSuccess(now -> {
      FileProps before = seen.getAndSet(now);
      if (before == null || before.lastModifiedTime() != now.lastModifiedTime()
          || before.size() != now.size()) {
        reload("change of " + path);
      }
    }));
  }
}
