package io.duet.bench;

import io.duet.bench.impl.Futures;
import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Prompts;
import io.duet.bench.impl.RawLoopback;
import io.duet.bench.impl.Table;
import io.duet.cluster.DuetConfig;
import io.duet.cluster.Settings;
import io.duet.contract.Addresses;
import io.duet.contract.PrefillRequest;
import io.duet.contract.PrefillResult;
import io.duet.contract.SamplingSpec;
import io.duet.kv.KvFrame;
import io.duet.kv.KvFrameParser;
import io.duet.kv.KvChannel;
import io.duet.kv.KvPuller;
import io.duet.kv.KvStreamReader;
import io.duet.kv.KvStreamWriter;
import io.duet.engine.Engine;
import io.duet.engine.EngineOptions;
import io.duet.engine.KvLayout;
import io.duet.engine.Sequence;
import io.duet.prefill.PrefillOptions;
import io.duet.prefill.PrefillVerticle;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Handler;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.json.JsonObject;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32C;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * KV transfer throughput of the real path: a {@link PrefillVerticle} (engine A) prefills a
 * prompt of {@code --tokens} token ids and leases its KV; the decode service's
 * {@link KvPuller} pulls it over loopback TCP into engine B. A pull is timed from the call to
 * the completion of its future, import into engine B included. For comparison: a raw Vert.x
 * TCP stream of the same bytes, and an in-process breakdown of the CPU work of each stage of
 * the KV path (chunk encoding, framing, parsing, import, and CRC32C alone).
 */
@Command(name = "kv-transfer", mixinStandardHelpOptions = true,
    description = "KV pull throughput (prefill verticle -> KvPuller over loopback TCP) vs raw "
        + "loopback TCP, with a per-stage breakdown.")
final class KvTransferCommand extends BenchCommand {

  private static final double MB = 1e6;
  private static final double GIB = 1L << 30;
  private static final long RAW_LARGE_BYTES = 64L << 20;
  /** TCP reads are cut into pieces of this size when the parser is timed in-process. */
  private static final int READ_BYTES = 64 << 10;

  /** Keeps the JIT from dropping the timed CRC pass. */
  private long checksumSink;

  @Parameters(index = "0", paramLabel = "MODEL", description = "llama2.c checkpoint (use a large "
      + "KV, e.g. the 15M shape 288 768 6 6 6 32000 256)")
  Path model;

  @Option(names = "--tokens", description = "prompt tokens per transfer, at most the model's "
      + "context - 1 (default: ${DEFAULT-VALUE}, capped to the context)")
  int tokens = 255;

  @Option(names = "--repeat", description = "measured transfers (default: ${DEFAULT-VALUE})")
  int repeat = 20;

  @Option(names = "--warmup", description = "unmeasured transfers first (default: ${DEFAULT-VALUE})")
  int warmup = 10;

  @Mixin
  EngineBenchOptions engineBench;

  /** Median and best of a set of durations. */
  private record Timing(double medianMs, double bestMs) {
    static Timing of(long[] nanos) {
      long[] sorted = nanos.clone();
      Arrays.sort(sorted);
      int n = sorted.length;
      double median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
      return new Timing(median / 1e6, sorted[0] / 1e6);
    }

    JsonObject toJson(long bytes) {
      return new JsonObject().put("medianMs", medianMs).put("bestMs", bestMs)
          .put("medianMBps", mbps(bytes, medianMs)).put("bestMBps", mbps(bytes, bestMs))
          .put("medianGiBps", gibps(bytes, medianMs)).put("bestGiBps", gibps(bytes, bestMs));
    }
  }

  private static double mbps(long bytes, double ms) {
    return bytes / MB / (ms / 1e3);
  }

  private static double gibps(long bytes, double ms) {
    return bytes / GIB / (ms / 1e3);
  }

  @Override
  public Integer call() throws Exception {
    requirePositive(tokens, "--tokens");
    requirePositive(repeat, "--repeat");
    requireNotNegative(warmup, "--warmup");
    EngineOptions options = engineBench.engineOptions(model);
    Progress progress = progress(7);
    progress.phase("opening engines A (prefill) and B (decode)");
    Random random = new Random(engineBench.seed);
    try (Engine engineA = Engine.open(options); Engine engineB = Engine.open(options)) {
      int length = Math.min(tokens, engineA.info().contextLength() - 1);
      if (length < 1) {
        throw badParameter("the model's context is too short");
      }
      KvLayout layout = engineA.layout();

      progress.phase("in-process breakdown of the KV path (" + length + " tokens)");
      Sequence source = engineA.allocate(Prompts.randomTokens(random, length,
          engineA.info().vocabSize(), engineA.info().bosToken()));
      engineA.step(List.of(source));
      KvStreamWriter sample = new KvStreamWriter(engineA.exportKv(source));
      long payloadBytes = length * layout.bytesPerToken();
      long streamBytes = sample.totalBytes();
      int frames = sample.chunkCount() + 2;
      long wireBytes = streamBytes + (long) frames * (KvFrame.HEAD_BYTES + KvFrame.CRC_BYTES);
      Map<String, long[]> stages = breakdown(engineA, engineB, source, progress);
      engineA.release(source);

      Vertx vertx = Vertx.vertx();
      try {
        progress.phase("starting the prefill verticle and the KV puller");
        PrefillVerticle prefill = new PrefillVerticle(engineA,
            PrefillOptions.from(DuetConfig.defaults().with(Settings.INSTANCE_ID, "bench-kv-p0"),
                "bench"),
            new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
        Futures.await(vertx.deployVerticle(prefill), 60);
        Context context = vertx.getOrCreateContext();
        Promise<KvPuller> created = Promise.promise();
        context.runOnContext(v -> created.complete(new KvPuller(vertx, engineB, 1, 60_000,
            "bench-kv-d0", KvChannel.defaults().withSameJvmHandoff(false))));
        KvPuller puller = Futures.await(created.future(), 30);

        progress.phase("KV pulls: warm-up");
        pulls(vertx, context, puller, engineB, random, length, warmup, "w", progress);
        progress.phase("KV pulls: measuring");
        long[] pullNanos = pulls(vertx, context, puller, engineB, random, length, repeat, "m",
            progress);
        // P frees a lease when D's RELEASE frame arrives, just after the pull completed.
        long deadline = System.currentTimeMillis() + 10_000;
        while (engineA.kvStats().usedBlocks() != 0 && System.currentTimeMillis() < deadline) {
          Thread.sleep(10);
        }
        if (engineB.kvStats().usedBlocks() != 0 || engineA.kvStats().usedBlocks() != 0) {
          throw new IllegalStateException("KV blocks left in use after the pulls: A "
              + engineA.kvStats().usedBlocks() + ", B " + engineB.kvStats().usedBlocks());
        }

        progress.phase("raw loopback TCP, " + wireBytes + " bytes");
        RawLoopback raw = new RawLoopback(vertx);
        Futures.await(raw.start(), 30);
        raws(raw, wireBytes, warmup, progress);
        long[] rawNanos = raws(raw, wireBytes, repeat, progress);
        progress.phase("raw loopback TCP, " + (RAW_LARGE_BYTES >> 20) + " MiB");
        int largeRepeat = Math.max(1, Math.min(5, repeat));
        raws(raw, RAW_LARGE_BYTES, 1, progress);
        long[] rawLargeNanos = raws(raw, RAW_LARGE_BYTES, largeRepeat, progress);
        Futures.await(raw.close(), 30);
        progress.done();

        report(engineA, layout, length, sample.chunkCount(), payloadBytes, wireBytes,
            Timing.of(pullNanos), Timing.of(rawNanos), Timing.of(rawLargeNanos), largeRepeat,
            stages);
      } finally {
        Futures.await(vertx.close(), 30);
      }
    }
    return 0;
  }

  /** Prefills a fresh prompt on P, then times the pull of its KV into B; B's copy is released. */
  private long[] pulls(Vertx vertx, Context context, KvPuller puller, Engine engineB,
      Random random, int length, int count, String tag, Progress progress) throws Exception {
    long[] nanos = new long[count];
    SamplingSpec sampling = SamplingSpec.greedy(1).ignoringEos();
    for (int i = 0; i < count; i++) {
      progress.detail("transfer " + (i + 1) + "/" + count);
      PrefillRequest request = new PrefillRequest("kv-" + tag + i, null,
          Prompts.randomTokens(random, length, engineB.info().vocabSize(),
              engineB.info().bosToken()), sampling);
      Promise<Long> pulled = Promise.promise();
      context.runOnContext(v -> vertx.eventBus().<JsonObject>request(Addresses.prefill(
              "bench-kv-p0"), request.toJson())
          .map(reply -> PrefillResult.fromJson(reply.body()).kv())
          .compose(handle -> {
            long start = System.nanoTime();
            return puller.pull(handle).map(result -> {
              long elapsed = System.nanoTime() - start;
              engineB.release(result.sequence());
              return elapsed;
            });
          })
          .onComplete(pulled));
      nanos[i] = Futures.await(pulled.future(), 120);
    }
    return nanos;
  }

  private long[] raws(RawLoopback raw, long bytes, int count, Progress progress) throws Exception {
    long[] nanos = new long[count];
    for (int i = 0; i < count; i++) {
      progress.detail("transfer " + (i + 1) + "/" + count);
      nanos[i] = Futures.await(raw.transfer(bytes), 120);
    }
    return nanos;
  }

  /**
   * Times each CPU stage of the KV path on one thread, without the network: what P's event
   * loop does per transfer (encode each chunk straight into its frame), what D's does (cut
   * frames out of 64 KiB direct buffers, as Netty's reads are, and import the chunks from them
   * in place), and one CRC32C pass over the stream for scale. A received frame lives only as
   * long as its handler, so D's parsing is timed alone and then with the import. The real path
   * runs P's and D's stages on two event loops, overlapped with the socket.
   */
  private Map<String, long[]> breakdown(Engine engineA, Engine engineB, Sequence source,
      Progress progress) {
    Map<String, long[]> stages = new LinkedHashMap<>();
    String[] names = {
        "P: chunk frames: floats -> frame array + 2 CRC32C (KvFrame.encode + KvExport.writeChunk)",
        "D: frame parse alone: CRC32C over the reads in place (KvFrameParser)",
        "D: frame parse + import: 2 CRC32C + reads -> floats (KvFrameParser, KvStreamReader)",
        "CRC32C alone, one pass over the stream"};
    for (String name : names) {
      stages.put(name, new long[repeat]);
    }
    for (int round = -warmup; round < repeat; round++) {
      progress.detail(round < 0 ? "warm-up " + (round + warmup + 1) + "/" + warmup
          : "round " + (round + 1) + "/" + repeat);
      KvStreamWriter export = new KvStreamWriter(engineA.exportKv(source));
      long[] t = new long[names.length];

      long start = System.nanoTime();
      List<Buffer> frames = new ArrayList<>();
      frames.add(KvFrame.of(KvFrame.Type.HEADER, export.header()).encode());
      for (int i = 0; i < export.chunkCount(); i++) {
        int index = i;
        frames.add(KvFrame.encode(KvFrame.Type.CHUNK, export.chunkLength(index),
            (destination, offset) -> export.writeChunk(index, destination, offset)));
      }
      frames.add(KvFrame.empty(KvFrame.Type.END).encode());
      t[0] = System.nanoTime() - start;

      Buffer wire = Buffer.buffer();
      frames.forEach(wire::appendBuffer);
      byte[] all = wire.getBytes();
      ByteBuf stream = Unpooled.directBuffer(all.length).writeBytes(all);
      try {
        start = System.nanoTime();
        parseReads(stream, frame -> { });
        t[1] = System.nanoTime() - start;

        KvStreamReader[] kvImport = new KvStreamReader[1];
        start = System.nanoTime();
        parseReads(stream, frame -> {
          switch (frame.type()) {
            case HEADER -> kvImport[0] = KvStreamReader.begin(engineB, frame.payload().getBytes());
            case CHUNK -> kvImport[0].acceptChunk(frame.payloadBuffers());
            case END -> engineB.release(kvImport[0].finish());
            default -> throw new IllegalStateException("unexpected " + frame.type() + " frame");
          }
        });
        t[2] = System.nanoTime() - start;
      } finally {
        stream.release();
      }

      start = System.nanoTime();
      CRC32C crc = new CRC32C();
      crc.update(all, 0, all.length);
      t[3] = System.nanoTime() - start;
      checksumSink ^= crc.getValue();
      if (round >= 0) {
        for (int s = 0; s < names.length; s++) {
          stages.get(names[s])[round] = t[s];
        }
      }
    }
    return stages;
  }

  /** Feeds {@code stream} to a parser in reads of {@link #READ_BYTES}, as a socket would. */
  private static void parseReads(ByteBuf stream, Handler<KvFrame> frames) {
    KvFrameParser parser = new KvFrameParser(KvFrame.MAX_PAYLOAD, frames, error -> {
      throw new IllegalStateException(error);
    });
    for (int from = 0; from < stream.writerIndex(); from += READ_BYTES) {
      parser.handle(stream.slice(from, Math.min(stream.writerIndex() - from, READ_BYTES)));
    }
  }

  private void report(Engine engineA, KvLayout layout, int length, int chunks, long payloadBytes,
      long wireBytes, Timing pull, Timing raw, Timing rawLarge, int largeRepeat,
      Map<String, long[]> stages) throws Exception {
    PrintWriter out = out();
    out.printf("kv-transfer: %s%n", engineA.description().toString());
    out.printf("%d tokens = %d blocks of %d; KV %d bytes/token; payload %.3f MB, on the wire "
            + "%.3f MB (KV header, chunk prefixes and CRCs, %d frames); %d measured transfers "
            + "after %d warm-up%n", length, chunks, layout.blockSize(), layout.bytesPerToken(),
        payloadBytes / MB, wireBytes / MB, chunks + 2, repeat, warmup);
    out.println(machine());
    out.println();
    Table table = new Table(1, "path", "bytes", "median ms", "best ms", "median MB/s",
        "best MB/s", "median GiB/s", "best GiB/s");
    row(table, "KV pull: prefill verticle -> KvPuller -> engine B", wireBytes, pull);
    row(table, "raw loopback TCP, same bytes, 256 KiB writes", wireBytes, raw);
    row(table, "raw loopback TCP, 64 MiB, 256 KiB writes (" + largeRepeat + " runs)",
        RAW_LARGE_BYTES, rawLarge);
    table.print(out);
    double ofRaw = mbps(wireBytes, pull.medianMs) / mbps(wireBytes, raw.medianMs);
    double ofRawLarge = mbps(wireBytes, pull.medianMs) / mbps(RAW_LARGE_BYTES, rawLarge.medianMs);
    out.printf("KV pull median = %.0f%% of raw loopback with the same bytes, %.0f%% of raw "
        + "loopback at 64 MiB%n", 100 * ofRaw, 100 * ofRawLarge);
    out.println();
    out.println("CPU per transfer by stage, in-process on one thread (median of " + repeat
        + "; P's and D's stages overlap on two event loops in the real pull)");
    Table breakdown = new Table(1, "stage", "median ms", "MB/s", "% of pull median");
    JsonObject jsonStages = new JsonObject();
    for (Map.Entry<String, long[]> stage : stages.entrySet()) {
      Timing t = Timing.of(stage.getValue());
      breakdown.row(stage.getKey(), Table.num(t.medianMs, 3),
          Table.num(mbps(wireBytes, t.medianMs), 0),
          Table.num(100 * t.medianMs / pull.medianMs, 2));
      jsonStages.put(stage.getKey(), t.toJson(wireBytes));
    }
    breakdown.print(out);
    out.flush();
    writeJson(new JsonObject().put("command", "kv-transfer").put("machine", machineJson()).put("model", model.toString())
        .put("engine", engineA.description().toString()).put("tokens", length)
        .put("chunks", chunks).put("bytesPerToken", layout.bytesPerToken())
        .put("payloadBytes", payloadBytes).put("wireBytes", wireBytes).put("repeat", repeat)
        .put("warmup", warmup).put("pull", pull.toJson(wireBytes))
        .put("rawSameBytes", raw.toJson(wireBytes))
        .put("rawLarge", rawLarge.toJson(RAW_LARGE_BYTES).put("bytes", RAW_LARGE_BYTES))
        .put("pullFractionOfRaw", ofRaw).put("pullFractionOfRawLarge", ofRawLarge)
        .put("breakdown", jsonStages));
  }

  private static void row(Table table, String path, long bytes, Timing t) {
    table.row(path, bytes, Table.num(t.medianMs, 3), Table.num(t.bestMs, 3),
        Table.num(mbps(bytes, t.medianMs), 1), Table.num(mbps(bytes, t.bestMs), 1),
        Table.num(gibps(bytes, t.medianMs), 3), Table.num(gibps(bytes, t.bestMs), 3));
  }
}
