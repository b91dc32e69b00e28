package dev.ferry.node.it;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.node.testbed.AgentProcess;
import dev.ferry.node.testbed.Cluster;
import dev.ferry.node.testbed.Testbed;
import java.io.IOException;
import java.nio.file.Files;
import java.time.Duration;
import org.apache.pekko.cluster.MemberStatus;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Pekko remoting between the bed's agents runs over TLS with config/tls.conf (every IT uses it):
 * both sides present a certificate of the bed's CA. An agent whose certificate another CA signed
 * cannot join, and the same host with the bed's certificate can.
 */
class TlsIT {
  private static Testbed bed;
  private static Cluster cluster;

  @BeforeAll
  static void up() {
    bed = Testbed.shared(3);
    cluster = Cluster.start(bed, "", "host1", "host2");
  }

  @AfterAll
  static void down() {
    if (cluster != null) {
      cluster.close();
    }
  }

  private static boolean memberOn(String host) {
    org.apache.pekko.cluster.typed.Cluster view =
        org.apache.pekko.cluster.typed.Cluster.get(cluster.client().system());
    String ip = bed.ip(host);
    for (var m : view.state().getMembers()) {
      if (m.address().getHost().orElse("").equals(ip) && m.status() == MemberStatus.up()) {
        return true;
      }
    }
    return false;
  }

  @Test
  void aForeignCertificateCannotJoinTheBedsCertificateCan() throws IOException {
    String host1Log = Files.readString(cluster.agent("host1").log());
    assertTrue(host1Log.contains("Artery tls-tcp"), "the agents' remoting is TLS:\n" + host1Log);

    AgentProcess intruder = new AgentProcess(bed, "host3", "", "foreign");
    long logged = Files.exists(intruder.log()) ? Files.size(intruder.log()) : 0;
    try {
      intruder.start("host1");
      assertFalse(
          intruder.readyWithin(Duration.ofSeconds(45)),
          "an agent with a foreign certificate became a member; see " + intruder.log());
      assertFalse(memberOn("host3"), "host3 is not a member");
      // the intruder trusts the bed's CA, so the handshake fails on host1's side: host1 answers
      // the intruder's certificate with the certificate_unknown alert
      String intruderLog = Files.readString(intruder.log()).substring((int) logged);
      assertTrue(
          intruderLog.contains("Received fatal alert: certificate_unknown"),
          "host1 refused the intruder's certificate:\n"
              + intruderLog.substring(Math.max(0, intruderLog.length() - 4000)));
    } finally {
      intruder.stop();
    }

    AgentProcess honest = new AgentProcess(bed, "host3", "");
    try {
      honest.start("host1");
      honest.awaitReady(Duration.ofSeconds(90));
      cluster.client().agent("host3", Duration.ofSeconds(60));
      await()
          .atMost(Duration.ofSeconds(30))
          .alias("host3 is an Up member with the bed's certificate")
          .until(() -> memberOn("host3"));
    } finally {
      honest.stop();
    }
  }
}
