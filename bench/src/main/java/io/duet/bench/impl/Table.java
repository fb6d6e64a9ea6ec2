package io.duet.bench.impl;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A plain-text table with aligned columns: text columns left-aligned, numeric ones
 * right-aligned. Numbers are formatted by the caller (see {@link #num}).
 */
public final class Table {

  private final List<String> header;
  private final int textColumns;
  private final List<List<String>> rows = new ArrayList<>();

  /** @param textColumns how many leading columns hold text (left-aligned) */
  public Table(int textColumns, String... header) {
    this.header = List.of(header);
    this.textColumns = textColumns;
  }

  public Table row(Object... cells) {
    if (cells.length != header.size()) {
      throw new IllegalArgumentException(cells.length + " cells for " + header.size() + " columns");
    }
    List<String> row = new ArrayList<>();
    for (Object cell : cells) {
      row.add(String.valueOf(cell));
    }
    rows.add(row);
    return this;
  }

  /** A number with {@code decimals} decimals, always with a dot. */
  public static String num(double value, int decimals) {
    return String.format(Locale.ROOT, "%." + decimals + "f", value);
  }

  /** Prints the header, a rule, the rows and a blank line. */
  public void print(PrintWriter out) {
    int[] widths = new int[header.size()];
    for (int c = 0; c < widths.length; c++) {
      widths[c] = header.get(c).length();
      for (List<String> row : rows) {
        widths[c] = Math.max(widths[c], row.get(c).length());
      }
    }
    out.println(line(header, widths));
    StringBuilder rule = new StringBuilder();
    for (int c = 0; c < widths.length; c++) {
      rule.append(c == 0 ? "" : "  ").append("-".repeat(widths[c]));
    }
    out.println(rule);
    for (List<String> row : rows) {
      out.println(line(row, widths));
    }
    out.println();
    out.flush();
  }

  private String line(List<String> cells, int[] widths) {
    StringBuilder b = new StringBuilder();
    for (int c = 0; c < widths.length; c++) {
      if (c > 0) {
        b.append("  ");
      }
      String cell = cells.get(c);
      String pad = " ".repeat(widths[c] - cell.length());
      b.append(c < textColumns ? cell + pad : pad + cell);
    }
    return b.toString().stripTrailing();
  }
}
