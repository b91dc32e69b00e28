package dev.ferry.api.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
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
    Config secrets =
        ConfigFactory.parseMap(
            Map.of(
                "ferry.api.auth.token", "overlay-test-token-0123456789",
                "ferry.node.host", "kvm1"));
    for (String file : List.of("single-node.conf", "cluster.conf", "tls.conf")) {
      Config full = DeployConfig.loadChecked(CONFIG.resolve(file), secrets);
      assertEquals("tls-tcp", full.getString("pekko.remote.artery.transport"), file);
      assertEquals(
          "/etc/ferry/tls/tls.key",
          full.getString("pekko.remote.artery.ssl.rotating-keys-engine.key-file"),
          file);
    }
  }
}
