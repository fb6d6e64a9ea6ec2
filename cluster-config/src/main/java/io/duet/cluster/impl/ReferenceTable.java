package io.duet.cluster.impl;

import io.duet.cluster.Setting;
import io.duet.cluster.Settings;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The configuration reference table of {@code docs/operations.md}, made from the declarations
 * in {@link Settings}: one row per setting with its key, type, default, range, environment
 * variable, flag and description. The table stands between {@link #BEGIN} and {@link #END}.
 */
public final class ReferenceTable {

  /** The line before the table. */
  public static final String BEGIN = "<!-- BEGIN configuration reference: generated from "
      + "io.duet.cluster.Settings by ConfigReferenceTest; do not edit by hand -->";
  /** The line after the table. */
  public static final String END = "<!-- END configuration reference -->";

  private ReferenceTable() {
  }

  /** The table in Markdown, one line per row, ending with a newline. */
  public static String markdown() {
    StringBuilder table = new StringBuilder()
        .append("| key | type | default | range | env | flag | description |\n")
        .append("| --- | --- | --- | --- | --- | --- | --- |\n");
    for (Setting<?> setting : Settings.all()) {
      List<String> cells = List.of(code(setting.key()), setting.type().name(),
          setting.rawDefault() == null ? "unset" : code(JsonPaths.text(setting.rawDefault())),
          setting.range(), setting.env().map(ReferenceTable::code).orElse(""),
          setting.flag().map(flag -> code(flag.toString())).orElse(""), setting.description());
      table.append(cells.stream().map(cell -> cell.replace("|", "\\|"))
          .collect(Collectors.joining(" | ", "| ", " |\n")));
    }
    return table.toString();
  }

  /**
   * {@code document} with the text between its {@link #BEGIN} and {@link #END} lines replaced by
   * the current {@link #markdown()} table.
   *
   * @throws IllegalArgumentException when the document lacks either line
   */
  public static String update(String document) {
    int begin = document.indexOf(BEGIN);
    int end = document.indexOf(END);
    if (begin < 0 || end < begin) {
      throw new IllegalArgumentException("the document has no '" + BEGIN + "' line followed by '"
          + END + "'");
    }
    return document.substring(0, begin + BEGIN.length()) + "\n" + markdown()
        + document.substring(end);
  }

  private static String code(String text) {
    return "`" + text + "`";
  }
}
