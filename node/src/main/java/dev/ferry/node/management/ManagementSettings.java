package dev.ferry.node.management;

import com.typesafe.config.Config;

/** {@code ferry.management}: where a node serves its probes and metrics. */
public record ManagementSettings(boolean enabled, String iface, int port) {
  public static ManagementSettings from(Config config) {
    Config c = config.getConfig("ferry.management");
    int port = c.getInt("port");
    if (port < 0 || port > 65535) {
      throw new IllegalArgumentException("ferry.management.port must be 0..65535, was " + port);
    }
    return new ManagementSettings(c.getBoolean("enabled"), c.getString("interface"), port);
  }

  public ManagementSettings withPort(int port) {
    return new ManagementSettings(enabled, iface, port);
  }
}
