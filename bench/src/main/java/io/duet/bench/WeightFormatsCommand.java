package io.duet.bench;

import io.duet.bench.impl.Progress;
import io.duet.bench.impl.Table;
import io.duet.engine.compute.Kernels;
import io.duet.engine.compute.KernelsProvider;
import io.duet.engine.compute.WeightFormat;
import io.duet.engine.compute.WeightMatrix;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * One matrix product on one thread, the same random weights held as float32, BF16 and FP8 (e4m3
 * with 128x128 block scales), for one token and for a batch: the kernels' cost per weight with
 * nothing else in the way, which the engine's decode figures mix with everything else a step
 * does. The formats take turns, and each figure is the best of {@code --repeat} timed runs.
 */
@Command(name = "weight-formats", mixinStandardHelpOptions = true,
    description = "Matrix-product time per weight and bytes held: float32 vs BF16 vs FP8 "
        + "weights, one thread.")
final class WeightFormatsCommand extends BenchCommand {

  private static final int FP8_BLOCK = 128;

  @Option(names = "--rows", description = "matrix rows (default: ${DEFAULT-VALUE})")
  int rows = 8192;

  @Option(names = "--cols", description = "matrix columns (default: ${DEFAULT-VALUE})")
  int cols = 4096;

  @Option(names = "--tokens", split = ",", description = "batch sizes (default: "
      + "${DEFAULT-VALUE})")
  List<Integer> tokens = List.of(1, 8);

  @Option(names = "--repeat", description = "timed runs per figure (default: ${DEFAULT-VALUE})")
  int repeat = 5;

  @Option(names = "--run-ms", description = "length of one timed run (default: "
      + "${DEFAULT-VALUE})")
  int runMillis = 300;

  @Override
  public Integer call() throws Exception {
    requirePositive(rows, "--rows");
    requirePositive(cols, "--cols");
    requirePositive(repeat, "--repeat");
    requirePositive(runMillis, "--run-ms");
    if ((long) rows * cols * Float.BYTES > Integer.MAX_VALUE) {
      throw badParameter("rows x cols floats must stay under 2 GiB");
    }
    Kernels kernels = KernelsProvider.best();
    List<WeightMatrix> matrices = matrices(new Random(42));
    Table table = new Table(1, "format", "tokens", "bytes held", "ms/product", "ns/weight/token",
        "GB/s of weights");
    JsonArray runs = new JsonArray();
    Progress progress = progress(tokens.size());
    for (int batch : tokens) {
      progress.phase(batch + " token" + (batch == 1 ? "" : "s"));
      float[] x = new float[batch * cols];
      Random random = new Random(batch);
      for (int i = 0; i < x.length; i++) {
        x[i] = random.nextFloat() * 2 - 1;
      }
      float[] out = new float[batch * rows];
      double[] best = new double[matrices.size()];
      java.util.Arrays.fill(best, Double.MAX_VALUE);
      // One warm-up run each, then the formats in turn, so that a change in the machine's load
      // falls on all of them.
      for (int round = -1; round < repeat; round++) {
        for (int m = 0; m < matrices.size(); m++) {
          double nanos = timedRun(kernels, matrices.get(m), x, batch, out);
          if (round >= 0) {
            best[m] = Math.min(best[m], nanos);
          }
        }
      }
      for (int m = 0; m < matrices.size(); m++) {
        WeightMatrix w = matrices.get(m);
        double perWeight = best[m] / ((double) rows * cols * batch);
        table.row(w.format(), batch, w.bytes(), Table.num(best[m] / 1e6, 3),
            Table.num(perWeight, 3), Table.num(w.bytes() / best[m], 2));
        runs.add(new JsonObject().put("format", w.format().name()).put("tokens", batch)
            .put("bytesHeld", w.bytes()).put("nanosPerProduct", best[m])
            .put("nanosPerWeightPerToken", perWeight));
      }
    }
    progress.done();
    out().println(rows + " x " + cols + " weights, one thread, " + kernels.description()
        + "; best of " + repeat + " runs of " + runMillis + " ms");
    table.print(out());
    out().println(machine());
    writeJson(new JsonObject().put("rows", rows).put("cols", cols).put("runs", runs)
        .put("machine", machineJson()));
    return 0;
  }

  /** The mean time of one product over a run of {@code --run-ms}. */
  private double timedRun(Kernels kernels, WeightMatrix w, float[] x, int batch, float[] out) {
    long start = System.nanoTime();
    long end = start + runMillis * 1_000_000L;
    int products = 0;
    long now;
    do {
      kernels.matmul(w, x, cols, batch, out, 0, rows, 0, rows);
      products++;
      now = System.nanoTime();
    } while (now < end);
    return (double) (now - start) / products;
  }

  /** The same weights as float32, BF16 (their upper halves) and FP8 (codes and scales). */
  private List<WeightMatrix> matrices(Random random) {
    int count = rows * cols;
    ByteBuffer f32 = ByteBuffer.allocateDirect(count * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer bf16 = ByteBuffer.allocateDirect(count * 2).order(ByteOrder.LITTLE_ENDIAN);
    ByteBuffer fp8 = ByteBuffer.allocateDirect(count);
    for (int i = 0; i < count; i++) {
      // e4m3 codes of every exponent, subnormals included, NaN codes left out.
      int code = random.nextInt(0x7f) | (random.nextBoolean() ? 0x80 : 0);
      fp8.put(i, (byte) code);
      float value = WeightFormat.e4m3ToFloat(code) / 448f;
      f32.putFloat(i * Float.BYTES, value);
      bf16.putShort(i * 2, (short) (Float.floatToRawIntBits(value) >>> 16));
    }
    int scaleCount = ((rows + FP8_BLOCK - 1) / FP8_BLOCK) * ((cols + FP8_BLOCK - 1) / FP8_BLOCK);
    float[] scales = new float[scaleCount];
    java.util.Arrays.fill(scales, 1 / 448f);
    return List.of(new WeightMatrix(f32, rows, cols), WeightMatrix.bf16(bf16, rows, cols),
        WeightMatrix.fp8(fp8, rows, cols, scales, FP8_BLOCK, FP8_BLOCK));
  }
}
