package io.duet.proxy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.duet.cluster.DuetConfig;
import org.junit.jupiter.api.Test;

class ProxyMainTest {

  @Test
  void httpServersAreOnePerCoreUnlessConfigured() {
    DuetConfig defaults = DuetConfig.defaults();
    assertEquals(Runtime.getRuntime().availableProcessors(),
        ProxyMain.options(defaults).getInstances());
    assertEquals(3, ProxyMain.options(defaults.with("proxy.http-instances", 3)).getInstances());
    assertThrows(IllegalArgumentException.class,
        () -> defaults.with("proxy.http-instances", -1));
  }
}
