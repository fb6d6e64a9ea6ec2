package io.duet.engine.impl;

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

  public long copiedBytes() {
    return copiedBytes;
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
  public static long anonymousHugePageBytes() {
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
