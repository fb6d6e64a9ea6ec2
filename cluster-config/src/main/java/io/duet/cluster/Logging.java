package io.duet.cluster;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.Appender;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.rolling.FixedWindowRollingPolicy;
import ch.qos.logback.core.rolling.RollingFileAppender;
import ch.qos.logback.core.rolling.SizeBasedTriggeringPolicy;
import ch.qos.logback.core.util.FileSize;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Optional;
import org.slf4j.ILoggerFactory;
import org.slf4j.LoggerFactory;

/**
 * Logging set-up from the configuration, on top of whatever {@code logback.xml} the service
 * ships (which may {@code <include resource="duet-logback-base.xml"/>} for the same pattern):
 * the console always, and with {@code log.path} set a file {@code <log.path>/<instance id>.log}
 * that rolls by size.
 */
public final class Logging {

  /**
   * The log line pattern: time, level, thread, logger, {@code [requestId]} when the MDC has a
   * {@value #REQUEST_ID} (left out otherwise), message.
   */
  public static final String PATTERN = "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5level [%thread] %logger{36}"
      + "%replace( [%X{requestId}]){' \\[\\]', ''} - %msg%n%ex";

  /** The MDC key of the request being served. */
  public static final String REQUEST_ID = "requestId";

  /** Name of the file appender {@link #configure} adds. */
  public static final String FILE_APPENDER = "DUET_FILE";
  /** Name of the console appender {@link #configure} adds when the root logger has none. */
  public static final String CONSOLE_APPENDER = "DUET_CONSOLE";

  /** A log file rolls over at this size. */
  public static final String MAX_FILE_SIZE = "100MB";
  /** Rolled-over files kept: {@code <id>.1.log} to {@code <id>.<n>.log}. */
  public static final int MAX_ROLLED_FILES = 5;

  private Logging() {
  }

  /**
   * Adds the console appender (unless the root logger has one) and, when {@code log.path} is
   * set, the rolling file appender (replacing one added earlier). Does nothing when SLF4J is not
   * bound to logback.
   *
   * @return the log file, or null when logging only to the console
   */
  public static Path configure(DuetConfig config) {
    ILoggerFactory factory = LoggerFactory.getILoggerFactory();
    if (!(factory instanceof LoggerContext context)) {
      LoggerFactory.getLogger(Logging.class).warn(
          "SLF4J is not bound to logback ({}): log.path is ignored", factory.getClass().getName());
      return null;
    }
    Logger root = context.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    if (!hasConsole(root)) {
      ConsoleAppender<ILoggingEvent> console = new ConsoleAppender<>();
      console.setContext(context);
      console.setName(CONSOLE_APPENDER);
      console.setEncoder(encoder(context));
      console.start();
      root.addAppender(console);
    }
    Optional<Path> logPath = config.get(Settings.LOG_PATH);
    if (logPath.isEmpty()) {
      return null;
    }
    String id = config.isSet(Settings.INSTANCE_ID)
        ? config.get(Settings.INSTANCE_ID).replaceAll("[^A-Za-z0-9._-]", "_") : "duet";
    Path dir = logPath.get().toAbsolutePath();
    Path file = dir.resolve(id + ".log");

    RollingFileAppender<ILoggingEvent> appender = new RollingFileAppender<>();
    appender.setContext(context);
    appender.setName(FILE_APPENDER);
    appender.setFile(file.toString());
    FixedWindowRollingPolicy rolling = new FixedWindowRollingPolicy();
    rolling.setContext(context);
    rolling.setParent(appender);
    rolling.setFileNamePattern(dir.resolve(id + ".%i.log").toString());
    rolling.setMinIndex(1);
    rolling.setMaxIndex(MAX_ROLLED_FILES);
    rolling.start();
    SizeBasedTriggeringPolicy<ILoggingEvent> trigger = new SizeBasedTriggeringPolicy<>();
    trigger.setContext(context);
    trigger.setMaxFileSize(FileSize.valueOf(MAX_FILE_SIZE));
    trigger.start();
    appender.setRollingPolicy(rolling);
    appender.setTriggeringPolicy(trigger);
    appender.setEncoder(encoder(context));
    appender.start(); // creates the directory

    Appender<ILoggingEvent> previous = root.getAppender(FILE_APPENDER);
    if (previous != null) {
      root.detachAppender(previous);
      previous.stop();
    }
    root.addAppender(appender);
    return file;
  }

  private static boolean hasConsole(Logger root) {
    for (Iterator<Appender<ILoggingEvent>> it = root.iteratorForAppenders(); it.hasNext(); ) {
      if (it.next() instanceof ConsoleAppender) {
        return true;
      }
    }
    return false;
  }

  private static PatternLayoutEncoder encoder(LoggerContext context) {
    PatternLayoutEncoder encoder = new PatternLayoutEncoder();
    encoder.setContext(context);
    encoder.setPattern(PATTERN);
    encoder.start();
    return encoder;
  }
}
