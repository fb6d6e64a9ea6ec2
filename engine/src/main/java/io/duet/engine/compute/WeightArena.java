package io.duet.engine.compute;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Off-heap memory that a model's tensors are copied into, each starting on a cache line, for
 * {@code WeightStorage.HUGE_PAGES}. Memory comes in direct buffers of up to 1 GiB (a buffer holds
 * at most 2 GiB); glibc backs such large allocations with transparent huge pages when asked to
 * (see {@code WeightStorage}).
 */
public final class WeightArena {

  private static final int ALIGNMENT = 64;
  private static final long MAX_BLOCK_BYTES = 1L << 30;
  /** Room for the alignment padding of many tensors, so one block holds a whole small model. */
  private static final long PADDING_SLACK = 64L << 10;
  /** Below this a copy holds at most one whole 2 MB page. */
  private static final long SMALLEST_FOR_HUGE_PAGES = 4L << 20;

  private final long hugePageBytesBefore = anonymousHugePageBytes();
  private long unallocated;
  private ByteBuffer block;
  private long copiedBytes;

  /** @param totalBytes what all the tensors to come add up to, alignment aside */
  public WeightArena(long totalBytes) {
    this.unallocated = totalBytes;
  }

  /** Copies {@code bytes} from {@code channel} at {@code position} into the arena. */
  public ByteBuffer copy(FileChannel channel, long position, int bytes) throws IOException {
    ByteBuffer tensor = take(bytes);
    ByteBuffer target = tensor.duplicate();
    while (target.hasRemaining()) {
      if (channel.read(target, position + target.position()) < 0) {
        throw new IOException("checkpoint ends inside a tensor at byte " + position);
      }
    }
    copiedBytes += bytes;
    return tensor;
  }

  /**
   * Room for {@code bytes} of weights that the caller fills itself (weights converted to float32
   * on the way in), zeroed, starting on a cache line.
   */
  public ByteBuffer allocate(int bytes) {
    ByteBuffer tensor = take(bytes);
    copiedBytes += bytes;
    return tensor;
  }

  /** How much was copied and how much of it landed on huge pages, or why none did; for logs. */
  public String describe() {
    long hugeGained = hugePageBytesBefore < 0 ? -1
        : anonymousHugePageBytes() - hugePageBytesBefore;
    String size = String.format("copied to %.1f MB off the heap", copiedBytes / 1e6);
    if (hugeGained < 0) {
      return size + " (whether on huge pages is unknown here)";
    }
    if (copiedBytes < SMALLEST_FOR_HUGE_PAGES) {
      return size + " (too small to gain from huge pages)";
    }
    if (hugeGained < copiedBytes / 2) {
      return size + ", not on huge pages: they need transparent huge pages in madvise or always "
          + "mode and GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (java -jar sets it)";
    }
    return size + String.format(", %.1f MB of it on huge pages",
        Math.min(hugeGained, copiedBytes) / 1e6);
  }

  private ByteBuffer take(int bytes) {
    int padded = (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    if (block == null || block.remaining() < padded) {
      long size = Math.max(padded, Math.min(unallocated + PADDING_SLACK, MAX_BLOCK_BYTES))
          + ALIGNMENT;
      try {
        block = ByteBuffer.allocateDirect((int) size).alignedSlice(ALIGNMENT);
      } catch (OutOfMemoryError e) {
        throw new IllegalStateException("no room for " + (size >> 20) + " MB more of weights "
            + "off the heap: raise -XX:MaxDirectMemorySize or keep the weights mapped", e);
      }
    }
    ByteBuffer tensor = block.slice(block.position(), bytes);
    block.position(block.position() + padded);
    unallocated = Math.max(0, unallocated - bytes);
    return tensor;
  }

  /**
   * How many bytes of this process's anonymous memory are on transparent huge pages, from
   * {@code /proc/self/smaps_rollup}; -1 where that cannot be read (not Linux, say).
   */
  private static long anonymousHugePageBytes() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/smaps_rollup"))) {
        if (line.startsWith("AnonHugePages:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        }
      }
      return -1;
    } catch (IOException | RuntimeException e) {
      return -1;
    }
  }
}
