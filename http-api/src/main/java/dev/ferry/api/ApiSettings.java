package dev.ferry.api;

import com.typesafe.config.Config;
import java.time.Duration;

/** {@code ferry.api} from the configuration, checked at start-up. */
public record ApiSettings(
    boolean enabled,
    String iface,
    int port,
    boolean tokenRequired,
    String token,
    String hostTokensFile,
    boolean tls,
    String tlsKeyFile,
    String tlsCertFile,
    Duration askTimeout,
    Duration eventsInterval,
    Duration hostsRefresh,
    Duration maxDeadlineAhead) {

  public static ApiSettings from(Config root) {
    Config c = root.getConfig("ferry.api");
    String mode = c.getString("auth.mode");
    if (!mode.equals("token") && !mode.equals("none")) {
      throw new IllegalArgumentException("ferry.api.auth.mode must be token or none, not " + mode);
    }
    ApiSettings s =
        new ApiSettings(
            c.getBoolean("enabled"),
            c.getString("interface"),
            c.getInt("port"),
            mode.equals("token"),
            c.getString("auth.token"),
            c.getString("auth.host-tokens-file"),
            c.getBoolean("tls.enabled"),
            c.getString("tls.key-file"),
            c.getString("tls.cert-file"),
            c.getDuration("ask-timeout"),
            c.getDuration("events-interval"),
            c.getDuration("hosts-refresh"),
            c.getDuration("max-deadline-ahead"));
    if (s.enabled && s.tokenRequired && s.token.length() < 16) {
      throw new IllegalArgumentException(
          "ferry.api.auth.token (or FERRY_API_TOKEN) must be set to at least 16 characters;"
              + " set ferry.api.auth.mode = none only for a loopback test bed");
    }
    if (s.enabled && s.tls && (s.tlsKeyFile.isEmpty() || s.tlsCertFile.isEmpty())) {
      throw new IllegalArgumentException(
          "ferry.api.tls.enabled needs ferry.api.tls.key-file and ferry.api.tls.cert-file");
    }
    if (s.enabled && !s.tls && !loopback(s.iface)) {
      throw new IllegalArgumentException(
          "the API listens on "
              + s.iface
              + " without TLS: beyond loopback the token would cross the network in clear;"
              + " set ferry.api.tls (key-file, cert-file) or listen on 127.0.0.1");
    }
    if (s.enabled && !s.tokenRequired && !loopback(s.iface)) {
      throw new IllegalArgumentException(
          "ferry.api.auth.mode = none is refused on "
              + s.iface
              + ": without a token the API may only listen on loopback (127.0.0.1 or ::1)");
    }
    return s;
  }

  static boolean loopback(String iface) {
    return iface.equals("localhost") || iface.startsWith("127.") || iface.equals("::1");
  }

  public ApiSettings withPort(int p) {
    return new ApiSettings(
        enabled,
        iface,
        p,
        tokenRequired,
        token,
        hostTokensFile,
        tls,
        tlsKeyFile,
        tlsCertFile,
        askTimeout,
        eventsInterval,
        hostsRefresh,
        maxDeadlineAhead);
  }
}
