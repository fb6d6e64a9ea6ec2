package io.duet.decode;

import io.duet.cluster.protocol.Addresses;
import io.duet.cluster.protocol.Cancel;
import io.duet.cluster.protocol.DecodeAccepted;
import io.duet.cluster.protocol.DecodeRequest;
import io.duet.cluster.protocol.Failure;
import io.duet.cluster.protocol.ServiceException;
import io.duet.cluster.protocol.InstanceInfo;
import io.duet.cluster.protocol.Role;
import io.duet.cluster.protocol.StreamCredit;
import io.duet.decode.impl.DecodeService;
import io.duet.engine.Engine;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.AbstractVerticle;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.eventbus.Message;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.http.HttpServer;
import io.vertx.core.json.JsonObject;
import io.duet.service.ServiceRuntime;
import io.duet.service.StatusServer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One decode instance (one data-parallel rank): takes {@link DecodeRequest}s on its event-bus
 * address, pulls each request's KV from the prefill instance that holds it, decodes all running
 * requests as one continuous batch and streams their tokens back with flow control.
 */
public final class DecodeVerticle extends AbstractVerticle implements ServiceRuntime.Worker {

  private static final Logger LOG = LoggerFactory.getLogger(DecodeVerticle.class);

  private final Engine engine;
  private final DecodeOptions options;
  private final PrometheusMeterRegistry metrics;
  private DecodeService service;
  private HttpServer statusServer;
  private MessageConsumer<JsonObject> requests;
  private MessageConsumer<JsonObject> control;

  public DecodeVerticle(Engine engine, DecodeOptions options, PrometheusMeterRegistry metrics) {
    this.engine = engine;
    this.options = options;
    this.metrics = metrics;
  }

  @Override
  public void start(Promise<Void> startPromise) {
    service = new DecodeService(vertx, context, engine, options, metrics);
    requests = vertx.eventBus().consumer(Addresses.decode(options.instanceId()), this::handleDecode);
    control = vertx.eventBus().consumer(Addresses.decodeControl(options.instanceId()),
        this::handleControl);
    Future.all(StatusServer.start(vertx, options.host(), options.httpPort(), metrics, this::info)
                .onSuccess(server -> statusServer = server),
            requests.completion(), control.completion())
        .onSuccess(v -> LOG.info("decode {} (rank {}) ready: max {} sequences, status on port {}, "
            + "model {} ({})", options.instanceId(), options.dpRank(), options.maxNumSeqs(),
            statusServer.actualPort(), options.modelName(), engine.layout().fingerprint()))
        .<Void>mapEmpty().onComplete(startPromise);
  }

  @Override
  public void stop(Promise<Void> stopPromise) {
    service.close();
    (statusServer == null ? Future.<Void>succeededFuture() : statusServer.close())
        .onComplete(stopPromise);
  }

  @Override
  public InstanceInfo info() {
    var kv = engine.kvStats();
    return new InstanceInfo(options.instanceId(), Role.DECODE,
        options.dpRank(), options.host(), statusServer == null ? 0 : statusServer.actualPort(), 0,
        options.modelName(), engine.layout().fingerprint(), options.maxNumSeqs(),
        new InstanceInfo.Load(service.active(), service.waiting(), service.reservedTokens(),
            kv.usedBlocks(), kv.totalBlocks()), System.currentTimeMillis());
  }

  private void handleDecode(Message<JsonObject> message) {
    DecodeRequest request;
    try {
      request = DecodeRequest.fromJson(message.body());
    } catch (IllegalArgumentException | NullPointerException | ClassCastException e) {
      message.fail(Failure.BAD_REQUEST.code(), Failure.BAD_REQUEST.message(
          "bad decode request: " + e.getMessage()));
      return;
    }
    service.accept(request).onComplete(result -> {
      if (result.succeeded()) {
        message.reply(new DecodeAccepted(request.requestId(), options.instanceId(),
            result.result()).toJson());
      } else {
        ServiceException.failReply(message, result.cause());
      }
    });
  }

  private void handleControl(Message<JsonObject> message) {
    JsonObject body = message.body();
    try {
      if (Cancel.isCancel(body)) {
        service.cancel(Cancel.fromJson(body).requestId());
      } else {
        StreamCredit credit = StreamCredit.fromJson(body);
        service.credit(credit.requestId(), credit.credits());
      }
    } catch (IllegalArgumentException | NullPointerException e) {
      LOG.warn("ignoring bad control message: {}", e.getMessage());
    }
  }
}
