package dev.ferry.api.deploy;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigResolveOptions;
import com.typesafe.config.ConfigValue;
import dev.ferry.api.ApiSettings;
import dev.ferry.node.management.ManagementSettings;
import dev.ferry.node.scheduler.SchedulerSettings;
import dev.ferry.node.settings.FerryConfig;
import dev.ferry.node.settings.NodeSettings;
import java.nio.file.Path;
import java.util.Map;

/** A deployable overlay (config/ or k8s/) loaded and checked the way a node would load it. */
final class DeployConfig {
  private static final Config REFERENCE = FerryConfig.load();

  private DeployConfig() {}

  /**
   * Loads {@code file} (its includes relative to it) above {@code secrets}, as a node does; asserts
   * that every typed settings class accepts it and that it sets only keys reference.conf defines (a
   * typo would otherwise be ignored). Returns the full configuration.
   */
  static Config loadChecked(Path file, Config secrets) {
    Config overlay = ConfigFactory.parseFile(file.toFile());
    Config full = FerryConfig.load(overlay.withFallback(secrets));
    NodeSettings.from(full);
    SchedulerSettings.from(full);
    ApiSettings.from(full);
    ManagementSettings.from(full);
    // optional substitutions of unset variables stay unresolved; the load above resolved them
    for (Map.Entry<String, ConfigValue> e :
        overlay.resolve(ConfigResolveOptions.defaults().setAllowUnresolved(true)).entrySet()) {
      assertTrue(
          REFERENCE.hasPathOrNull(e.getKey()),
          file.getFileName() + " sets an unknown key " + e.getKey());
    }
    return full;
  }
}
