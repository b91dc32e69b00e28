package dev.ferry.node.settings;

import com.typesafe.config.Config;
import dev.ferry.node.process.Ssh;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/** {@code ferry.node} from the configuration, read once and checked at start-up. */
public record NodeSettings(
    String host,
    String libvirtUri,
    List<Path> datastores,
    Path stateDir,
    Path qemuRunDir,
    Tools tools,
    Migration migration,
    Duration stopGrace) {

  /** External programs. */
  public record Tools(
      String qemuImg,
      String tar,
      String rsync,
      String sha256sum,
      String java,
      Ssh ssh,
      String applierClassPath,
      List<String> applierJavaOptions,
      Duration commandTimeout) {}

  /** Migration behaviour. */
  public record Migration(
      String destinationUri,
      boolean copyWholeVmDirectory,
      int finalSyncAttempts,
      boolean imageCheck,
      boolean removeSourceFiles,
      Duration progressInterval,
      int copyChunk,
      long commitBandwidth,
      int mergeAttempts,
      Timeouts timeouts,
      Intervals intervals,
      Duration holdBeforeFinalSync) {

    public String destinationUri(String host) {
      return String.format(destinationUri, host);
    }
  }

  /** How often a migration polls and how long it waits for small things; see reference.conf. */
  public record Intervals(
      Duration contactRetry,
      Duration ask,
      Duration jobPoll,
      Duration blockJobPoll,
      Duration shutdownPoll,
      Duration confirmPoll,
      Duration confirmWait,
      Duration confirmAfterAck,
      Duration recoveredDestinationPoll,
      Duration releaseWait,
      Duration peerTakeoverRetry) {}

  /** Time limits; see reference.conf. */
  public record Timeouts(
      Duration preflight,
      Duration contact,
      Duration copyBase,
      Duration copyPerGib,
      Duration memoryBase,
      Duration memoryPerGib,
      Duration memoryProgress,
      Duration finalSync,
      Duration verify,
      Duration rollback,
      Duration shutdown,
      Duration peerTakeover) {

    public Duration copy(long bytes) {
      return copyBase.plus(copyPerGib.multipliedBy(Math.max(1, (bytes + (1L << 30) - 1) >> 30)));
    }

    public Duration memory(long bytes) {
      return memoryBase.plus(
          memoryPerGib.multipliedBy(Math.max(1, (bytes + (1L << 30) - 1) >> 30)));
    }
  }

  public static NodeSettings from(Config root) {
    Config c = root.getConfig("ferry.node");
    String host = c.getString("host");
    if (host.isEmpty()) {
      try {
        host = InetAddress.getLocalHost().getHostName();
      } catch (UnknownHostException e) {
        throw new IllegalArgumentException(
            "ferry.node.host is empty and the host name is unknown", e);
      }
    }
    Config t = c.getConfig("tools");
    String classPath = t.getString("applier-class-path");
    if (classPath.isEmpty()) {
      classPath = System.getProperty("java.class.path");
    }
    Tools tools =
        new Tools(
            t.getString("qemu-img"),
            t.getString("tar"),
            t.getString("rsync"),
            t.getString("sha256sum"),
            t.getString("java"),
            new Ssh(t.getString("ssh"), t.getStringList("ssh-options"), t.getString("ssh-user")),
            classPath,
            t.getStringList("applier-java-options"),
            t.getDuration("command-timeout"));
    Config m = c.getConfig("migration");
    Config to = m.getConfig("timeouts");
    Timeouts timeouts =
        new Timeouts(
            to.getDuration("preflight"),
            to.getDuration("contact"),
            to.getDuration("copy-base"),
            to.getDuration("copy-per-gib"),
            to.getDuration("memory-base"),
            to.getDuration("memory-per-gib"),
            to.getDuration("memory-progress"),
            to.getDuration("final-sync"),
            to.getDuration("verify"),
            to.getDuration("rollback"),
            to.getDuration("shutdown"),
            to.getDuration("peer-takeover"));
    Migration migration =
        new Migration(
            m.getString("destination-uri"),
            m.getBoolean("copy-whole-vm-directory"),
            m.getInt("final-sync-attempts"),
            m.getBoolean("image-check"),
            m.getBoolean("remove-source-files"),
            m.getDuration("progress-interval"),
            (int) m.getBytes("copy-chunk").longValue(),
            m.getBytes("overlay.commit-bandwidth"),
            m.getInt("overlay.merge-attempts"),
            timeouts,
            new Intervals(
                m.getDuration("intervals.contact-retry"),
                m.getDuration("intervals.ask"),
                m.getDuration("intervals.job-poll"),
                m.getDuration("intervals.block-job-poll"),
                m.getDuration("intervals.shutdown-poll"),
                m.getDuration("intervals.confirm-poll"),
                m.getDuration("intervals.confirm-wait"),
                m.getDuration("intervals.confirm-after-ack"),
                m.getDuration("intervals.recovered-destination-poll"),
                m.getDuration("intervals.release-wait"),
                m.getDuration("intervals.peer-takeover-retry")),
            m.getDuration("fault-tests.hold-before-final-sync"));
    if (!migration.destinationUri().contains("%s")) {
      throw new IllegalArgumentException("ferry.node.migration.destination-uri must contain %s");
    }
    if (migration.finalSyncAttempts() < 1) {
      throw new IllegalArgumentException("ferry.node.migration.final-sync-attempts must be >= 1");
    }
    List<Path> datastores = c.getStringList("datastores").stream().map(Path::of).toList();
    for (Path d : datastores) {
      if (!d.isAbsolute()) {
        throw new IllegalArgumentException("ferry.node.datastores: " + d + " is not absolute");
      }
    }
    return new NodeSettings(
        host,
        c.getString("libvirt-uri"),
        datastores,
        Path.of(c.getString("state-dir")),
        Path.of(c.getString("qemu-run-dir")),
        tools,
        migration,
        c.getDuration("stop-grace"));
  }
}
