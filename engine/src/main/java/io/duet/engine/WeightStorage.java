package io.duet.engine;

/** Where an engine keeps a model's weights. Neither puts them on the Java heap. */
public enum WeightStorage {

  /**
   * Memory-mapped from the checkpoint: opening reads only the header whatever the model's size,
   * and the pages are the page cache's, shared with every process that maps the file.
   */
  MAPPED,

  /**
   * Copied into off-heap memory backed by transparent huge pages. Every decode step streams all
   * the weights, and with 4 KB pages that costs a TLB miss every 4 KB; a 2 MB page takes one,
   * which makes single-stream decode faster (docs/performance.md). Opening copies the whole file, and the copy is
   * held besides the page cache. The memory comes from {@code ByteBuffer.allocateDirect}, so
   * models larger than the heap need {@code -XX:MaxDirectMemorySize}. Huge pages need the
   * kernel's transparent huge pages in {@code madvise} or {@code always} mode and glibc asked to
   * use them ({@code GLIBC_TUNABLES=glibc.malloc.hugetlb=1}, which the {@code java -jar}
   * launcher sets); the engine's log says how much of the copy got them.
   */
  HUGE_PAGES
}
