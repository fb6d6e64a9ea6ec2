package io.duet.bench.impl;

import java.io.PrintWriter;

/**
 * The one progress line on stderr: {@code \r[bench] phase i/n: label (detail)}, rewritten in
 * place so that stdout stays clean for the results table.
 */
public final class Progress {

  private final PrintWriter err;
  private final int phases;
  private int phase;
  private String label = "";
  private int lastLength;

  public Progress(PrintWriter err, int phases) {
    this.err = err;
    this.phases = phases;
  }

  /** Starts the next phase. */
  public void phase(String value) {
    phase++;
    label = value;
    print(null);
  }

  /** Rewrites the current phase's line with a detail such as {@code request 3/16}. */
  public void detail(String detail) {
    print(detail);
  }

  /** Ends the progress line. */
  public void done() {
    print("done");
    err.println();
    err.flush();
  }

  private synchronized void print(String detail) {
    String line = "[bench] phase " + phase + "/" + phases + ": " + label
        + (detail == null ? "" : " (" + detail + ")");
    int pad = Math.max(0, lastLength - line.length());
    err.print("\r" + line + " ".repeat(pad));
    err.flush();
    lastLength = line.length();
  }
}
