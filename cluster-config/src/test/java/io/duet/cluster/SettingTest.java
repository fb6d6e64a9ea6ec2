package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.duet.engine.WeightStorage;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** Declarations fail fast when they contradict themselves, and types read values as files do. */
class SettingTest {

  @Test
  void aDeclarationThatContradictsItselfFailsNamingItsKey() {
    IllegalStateException outOfRange = assertThrows(IllegalStateException.class,
        () -> Setting.builder("x.port", SettingType.port()).defaultValue(70000)
            .description("d").build());
    assertTrue(outOfRange.getMessage().startsWith("x.port: the default 70000 is not an integer "
        + "in 0..65535"), outOfRange.getMessage());
    assertThrows(IllegalStateException.class, () -> Setting.builder("x.name",
        SettingType.string()).description("no default and nothing derived").build());
    assertThrows(IllegalStateException.class, () -> Setting.builder("x.count",
        SettingType.atLeast(1)).defaultValue(1).switchFlag("--count").description("d").build());
    assertThrows(IllegalArgumentException.class, () -> Setting.builder("x.camelCase",
        SettingType.bool()));
  }

  @Test
  void requireValidNamesTheKeyAndTheRange() {
    assertEquals(7, Settings.PROXY_PORT.requireValid(7));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> Settings.DECODE_MAX_NUM_SEQS.requireValid(0));
    assertEquals("decode.max-num-seqs must be an integer >= 1, got 0", e.getMessage());
  }

  @Test
  void typesReadValuesAsFilesAndVariablesWriteThem() {
    assertEquals(7000, SettingType.port().decode("7000"), "a quoted YAML number");
    assertEquals(7000, SettingType.port().decode(7000.0));
    assertEquals(Runtime.getRuntime().availableProcessors(),
        SettingType.countOrAllCores().decode(0));
    assertEquals(3, SettingType.countOrAllCores().decode(3));
    assertEquals(Boolean.FALSE, SettingType.bool().decode("FALSE"));
    assertEquals(List.of("a", "b:5801"), SettingType.hostPorts().decode(" a , b:5801 ,"));
    assertEquals(List.of("a", "fe80::1"), SettingType.hostPorts().decode(new JsonArray()
        .add("a").add(" ").add("fe80::1")));
    assertEquals(WeightStorage.HUGE_PAGES,
        SettingType.choice(WeightStorage.class).decode("huge-pages"));
    assertEquals("huge-pages", SettingType.choice(WeightStorage.class)
        .encode(WeightStorage.HUGE_PAGES));
    assertEquals(Optional.empty(), SettingType.optional(SettingType.path()).decode("  "));
    assertEquals(Map.of("a.b", "1"), SettingType.map().decode(new JsonObject()
        .put("a", new JsonObject().put("b", 1))));
    assertEquals(5901, SettingType.port().fromText("5901"));
    assertEquals("59o1", SettingType.port().fromText("59o1"), "left for validation to report");
    assertEquals(new JsonArray().add("p0").add("p1"), SettingType.hostPorts().fromText("p0,,p1"));
    for (Object bad : List.of("soon", 65536, -1, 1.5, new JsonArray())) {
      assertThrows(IllegalArgumentException.class, () -> SettingType.port().decode(bad),
          String.valueOf(bad));
    }
    assertEquals(List.of(8, 16), SettingType.integers(1).decode("8, 16"));
    assertEquals(List.of(64), SettingType.integers(1).decode(new JsonArray().add("64")));
    assertEquals(new JsonArray().add(64).add("x"), SettingType.integers(1).fromText("64,x"),
        "left for validation to report");
    for (Object bad : List.of(new JsonArray(), new JsonArray().add(0), "8,x", 8)) {
      assertThrows(IllegalArgumentException.class, () -> SettingType.integers(1).decode(bad),
          String.valueOf(bad));
    }
    assertThrows(IllegalArgumentException.class, () -> SettingType.hostPorts().decode(":5701"));
    assertThrows(IllegalArgumentException.class, () -> SettingType.string().decode(" "));
  }
}
