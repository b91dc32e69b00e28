package dev.ferry.node.scheduler;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigValueFactory;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * The scheduler's event journal: an H2 file by default, PostgreSQL when {@code
 * ferry.scheduler.journal.url} says so. The Slick profile and JDBC driver follow the URL, so an
 * operator sets one key (or {@code FERRY_JOURNAL_URL}); the tables are created if missing.
 */
public final class SchedulerJournal {
  private SchedulerJournal() {}

  private static final String SHARED = "pekko-persistence-jdbc.shared-databases.ferry";

  /** The configuration with the profile and driver matching the journal URL. */
  public static Config configure(Config config) {
    String url = config.getString("ferry.scheduler.journal.url");
    String profile;
    String driver;
    if (url.startsWith("jdbc:postgresql:")) {
      profile = "slick.jdbc.PostgresProfile$";
      driver = "org.postgresql.Driver";
    } else if (url.startsWith("jdbc:h2:")) {
      profile = "slick.jdbc.H2Profile$";
      driver = "org.h2.Driver";
    } else {
      throw new IllegalArgumentException(
          "ferry.scheduler.journal.url must be a jdbc:h2: or jdbc:postgresql: URL, not " + url);
    }
    // set here, not only by substitution in reference.conf: an overlay that changes the URL must
    // reach the connection pool whichever way the configuration was assembled
    return ConfigFactory.empty()
        .withValue(SHARED + ".db.url", ConfigValueFactory.fromAnyRef(url))
        .withValue(
            SHARED + ".db.user",
            ConfigValueFactory.fromAnyRef(config.getString("ferry.scheduler.journal.user")))
        .withValue(
            SHARED + ".db.password",
            ConfigValueFactory.fromAnyRef(config.getString("ferry.scheduler.journal.password")))
        .withValue(SHARED + ".profile", ConfigValueFactory.fromAnyRef(profile))
        .withValue(SHARED + ".db.driver", ConfigValueFactory.fromAnyRef(driver))
        .withFallback(config)
        .resolve();
  }

  /**
   * Creates the journal's tables if {@code ferry.scheduler.journal.create-schema} is on. Runs
   * before the scheduler starts, so a database that is down fails the start with a clear error.
   */
  public static void createSchema(Config config) {
    Config j = config.getConfig("ferry.scheduler.journal");
    if (!j.getBoolean("create-schema")) {
      return;
    }
    String url = j.getString("url");
    String script = url.startsWith("jdbc:postgresql:") ? "schema-postgres.sql" : "schema-h2.sql";
    String sql;
    try (InputStream in = SchedulerJournal.class.getResourceAsStream(script)) {
      sql = new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    try (Connection c =
            DriverManager.getConnection(url, j.getString("user"), j.getString("password"));
        Statement st = c.createStatement()) {
      for (String statement : sql.split(";")) {
        String body =
            statement.lines().filter(l -> !l.strip().startsWith("--")).toList().stream()
                .reduce("", (a, b) -> a + "\n" + b)
                .strip();
        if (!body.isEmpty()) {
          st.execute(body);
        }
      }
    } catch (SQLException e) {
      throw new IllegalStateException(
          "cannot prepare the scheduler's journal at " + redact(url) + ": " + e.getMessage(), e);
    }
  }

  /** The URL without a password parameter, for messages. */
  static String redact(String url) {
    return url.replaceAll("(?i)(password=)[^&;]*", "$1***");
  }
}
