package dev.ferry.node.settings;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.ferry.node.scheduler.SchedulerJournal;

/**
 * The configuration every Ferry process starts from, in this order of precedence: system
 * properties, the application's configuration ({@code -Dconfig.file=...}, an overlay from {@code
 * config/}), {@code ferry-pekko.conf} (Ferry's settings of its libraries), then every library's
 * {@code reference.conf}. The journal's driver and profile follow its URL.
 */
public final class FerryConfig {
  private FerryConfig() {}

  public static Config load() {
    return load(ConfigFactory.empty());
  }

  /** The same, with {@code extra} above everything (tests). */
  public static Config load(Config extra) {
    ConfigFactory.invalidateCaches();
    Config merged =
        extra
            .withFallback(ConfigFactory.defaultOverrides())
            .withFallback(ConfigFactory.defaultApplication())
            .withFallback(ConfigFactory.parseResources(FerryConfig.class, "/ferry-pekko.conf"))
            .withFallback(ConfigFactory.defaultReferenceUnresolved())
            .resolve();
    return SchedulerJournal.configure(merged);
  }

  /**
   * For a process's main only: when its actor system ends (a stop, or the split-brain resolver
   * downed this node), the JVM exits too, so that systemd ({@code Restart=always}) or Kubernetes
   * starts a fresh agent; an actor system left ended inside a live JVM serves nothing. Tests that
   * start systems in their own JVM must not get this.
   */
  public static Config exitingTheJvm(Config config) {
    return com.typesafe.config.ConfigFactory.parseString("pekko.coordinated-shutdown.exit-jvm = on")
        .withFallback(config);
  }
}
