package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.cluster.impl.ReferenceTable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * The configuration reference of {@code docs/operations.md} is the table the declarations make.
 * With {@code -Dduet.docs.update=true} this test rewrites the table instead of failing.
 */
class ConfigReferenceTest {

  private static final Path GUIDE = Path.of("..", "docs", "operations.md");
  private static final String UPDATE = "duet.docs.update";

  @Test
  void operationsGuideHoldsTheTableOfTheDeclarations() throws IOException {
    String committed = Files.readString(GUIDE);
    String current = ReferenceTable.update(committed);
    if (Boolean.getBoolean(UPDATE)) {
      Files.writeString(GUIDE, current);
    }
    assertEquals(current, Files.readString(GUIDE), "docs/operations.md's configuration table "
        + "is not the one the declarations in io.duet.cluster.Settings make; regenerate it with "
        + "`mvn -B -q -pl cluster-config test -Dtest=ConfigReferenceTest -D" + UPDATE + "=true` "
        + "(after `mvn -B -q install -DskipTests`)");
  }

  @Test
  void tableHasARowPerSettingWithEveryColumn() {
    String table = ReferenceTable.markdown();
    assertEquals(Settings.all().size() + 2, table.lines().count(), table);
    assertTrue(table.contains("| `proxy.port` | integer | `7000` | 0..65535 | `DUET_PROXY_PORT` "
        + "| `--port PORT` | The proxy's HTTP port (0 = any free port). |"), table);
    assertTrue(table.contains("| `cluster.members` | list | `[\"127.0.0.1\"]` | host or "
        + "host:port, each | `DUET_CLUSTER_MEMBERS` | `--members HOST[:PORT],...` |"), table);
    assertTrue(table.contains("| `proxy.embedded` | boolean | `true` | true, false |  "
        + "| `--[no-]embedded` |"), table);
    assertTrue(table.contains("| `cluster.heartbeat-timeout-millis` | integer | `2000` | >= 1, "
        + "greater than cluster.heartbeat-millis |"), table);
    assertTrue(table.contains("| `model.path` | path | unset |  | `MODEL_PATH` |"), table);
  }

  @Test
  void updateReplacesOnlyTheTable() {
    String document = "# Guide\n" + ReferenceTable.BEGIN + "\nold rows\n" + ReferenceTable.END
        + "\nafter\n";
    assertEquals("# Guide\n" + ReferenceTable.BEGIN + "\n" + ReferenceTable.markdown()
        + ReferenceTable.END + "\nafter\n", ReferenceTable.update(document));
  }
}
