package io.duet.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.core.Appender;
import io.micrometer.core.instrument.Counter;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.MDC;

class LoggingMetricsTest {

  @TempDir
  Path dir;

  @Test
  void fileAppenderNamedByInstanceWithRequestIds() throws Exception {
    DuetConfig config = DuetConfig.defaults()
        .with(Settings.LOG_PATH, Optional.of(dir.resolve("logs")))
        .with(Settings.INSTANCE_ID, "decode-test-1");
    Path file = Logging.configure(config);
    ch.qos.logback.classic.Logger root = ((LoggerContext) LoggerFactory.getILoggerFactory())
        .getLogger(Logger.ROOT_LOGGER_NAME);
    try {
      assertEquals(dir.resolve("logs").resolve("decode-test-1.log").toAbsolutePath(), file);
      Logger log = LoggerFactory.getLogger("duet.test");
      MDC.put(Logging.REQUEST_ID, "req-42");
      log.info("with a request");
      MDC.remove(Logging.REQUEST_ID);
      log.info("without a request");
      String text = Files.readString(file);
      assertTrue(text.contains("duet.test [req-42] - with a request"), text);
      assertTrue(text.contains("duet.test - without a request"), text);
      assertEquals(file, Logging.configure(config), "configuring again replaces the appender");
    } finally {
      Appender<?> appender = root.getAppender(Logging.FILE_APPENDER);
      root.detachAppender(Logging.FILE_APPENDER);
      appender.stop();
    }
  }

  @Test
  void noLogPathMeansConsoleOnly() {
    assertEquals(null, Logging.configure(DuetConfig.defaults()));
  }

  @Test
  void prometheusScrapeCarriesCommonTags() {
    PrometheusMeterRegistry registry = Metrics.createRegistry("prefill", "prefill-h-123abc");
    Counter.builder("duet.requests").register(registry).increment(3);
    String text = Metrics.scrape(registry);
    assertTrue(text.contains("duet_requests_total{instance=\"prefill-h-123abc\",role=\"prefill\"} 3.0"), text);
    assertEquals(PrometheusTextFormatWriter.CONTENT_TYPE, Metrics.CONTENT_TYPE);
    registry.close();
  }
}
