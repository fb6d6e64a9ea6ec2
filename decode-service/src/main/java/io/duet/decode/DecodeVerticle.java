package io.duet.decode;

import io.duet.contract.Addresses;
import io.duet.contract.Cancel;
import io.duet.contract.DecodeAccepted;
import io.duet.contract.DecodeRequest;
import io.duet.contract.Failure;
import io.duet.contract.ServiceException;
import io.duet.contract.InstanceInfo;
import io.duet.contract.Role;
import io.duet.contract.StreamCredit;
import io.duet.decode.impl.DecodeService;
import io.duet.decode.impl.RankStepping;
import io.duet.engine.Engine;
import io.duet.service.StatusServer;
import io.duet.service.WorkerVerticle;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.eventbus.Message;
import io.vertx.core.json.JsonObject;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One data-parallel rank of a decode instance: takes {@link DecodeRequest}s on its event-bus
 * address, pulls each request's KV from the prefill instance that holds it, decodes all running
 * requests as one continuous batch on its own engine and streams their tokens back with flow
 * control. It has its own status endpoint and registry entry; the ranks of an instance share
 * only the model's weights.
 */
public final class DecodeVerticle extends WorkerVerticle {

  private static final Logger LOG = LoggerFactory.getLogger(DecodeVerticle.class);

  private final Engine engine;
  private final DecodeOptions options;
  private final RankStepping stepping;
  private DecodeService service;

  /** A rank that steps on its own ({@link RankStepping#INDEPENDENT}). */
  public DecodeVerticle(Engine engine, DecodeOptions options, PrometheusMeterRegistry metrics) {
    this(engine, options, RankStepping.INDEPENDENT, metrics);
  }

  /**
   * A rank that steps as {@code stepping} says: in lockstep with the other ranks of its
   * expert-parallel group when its engine shares the experts with theirs.
   */
  public DecodeVerticle(Engine engine, DecodeOptions options, RankStepping stepping,
      PrometheusMeterRegistry metrics) {
    super(Addresses.decode(options.instanceId(), options.dpRank()),
        Addresses.decodeControl(options.instanceId(), options.dpRank()),
        new StatusServer(options.host(), options.httpPort(), metrics));
    this.engine = engine;
    this.options = options;
    this.stepping = stepping;
  }

  @Override
  protected Future<?> startService() {
    service = new DecodeService(vertx, context, engine, options, stepping, metrics());
    return Future.succeededFuture();
  }

  @Override
  protected String readyMessage() {
    return String.format("decode %s (rank %d) ready: max %d sequences, status on port %d, "
        + "model %s (%s)", options.instanceId(), options.dpRank(), options.maxNumSeqs(),
        statusPort(), options.modelName(), engine.layout().fingerprint());
  }

  @Override
  protected boolean isIdle() {
    // A rank whose group still decodes stays, drained or not: the group needs its experts.
    return service.isIdle() && !stepping.othersBusy();
  }

  @Override
  protected Future<?> stopService() {
    service.close();
    return Future.succeededFuture();
  }

  @Override
  public InstanceInfo info() {
    var kv = engine.kvStats();
    return new InstanceInfo(options.instanceId(), Role.DECODE, options.dpRank(), options.ranks(),
        options.host(),
        statusPort(), 0, options.modelName(), engine.layout().fingerprint(),
        engine.info().chatTemplate(), options.maxNumSeqs(), new InstanceInfo.Load(service.active(), service.waiting(),
            service.reservedTokens(), kv.usedBlocks(), kv.totalBlocks()),
        System.currentTimeMillis()).withEngine(engine.info().architecture())
        .withCapabilities(InstanceInfo.ALL_CAPABILITIES);
  }

  @Override
  protected void handleRequest(Message<JsonObject> message) {
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

  @Override
  protected void handleControl(Message<JsonObject> message) {
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
