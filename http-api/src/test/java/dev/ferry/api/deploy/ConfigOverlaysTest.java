package dev.ferry.api.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValue;
import dev.ferry.api.ApiSettings;
import dev.ferry.node.management.ManagementSettings;
import dev.ferry.node.scheduler.SchedulerSettings;
import dev.ferry.node.settings.FerryConfig;
import dev.ferry.node.settings.NodeSettings;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The documented overlays in config/ load: their includes resolve, the typed settings accept them,
 * every key they set is one reference.conf defines (a typo would be silently ignored), and remoting
 * between nodes is TLS.
 */
class ConfigOverlaysTest {
  private static final Path CONFIG = Path.of("..", "config").toAbsolutePath().normalize();

  @Test
  void everyOverlayLoadsUsesKnownKeysAndTls() {
    Config reference = FerryConfig.load();
    Config secrets =
        ConfigFactory.parseMap(
            Map.of(
                "ferry.api.auth.token", "overlay-test-token-0123456789",
                "ferry.node.host", "kvm1"));
    for (String file : List.of("single-node.conf", "cluster.conf", "tls.conf")) {
      Config overlay = ConfigFactory.parseFile(CONFIG.resolve(file).toFile());
      Config full = FerryConfig.load(secrets.withFallback(overlay));
      NodeSettings.from(full);
      SchedulerSettings.from(full);
      ApiSettings.from(full);
      ManagementSettings.from(full);
      assertEquals("tls-tcp", full.getString("pekko.remote.artery.transport"), file);
      assertEquals(
          "/etc/ferry/tls/tls.key",
          full.getString("pekko.remote.artery.ssl.rotating-keys-engine.key-file"),
          file);
      for (Map.Entry<String, ConfigValue> e :
          overlay
              .resolve(com.typesafe.config.ConfigResolveOptions.defaults().setAllowUnresolved(true))
              .entrySet()) {
        assertTrue(
            reference.hasPathOrNull(e.getKey()), file + " sets an unknown key " + e.getKey());
      }
    }
  }
}
