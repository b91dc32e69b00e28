package dev.ferry.api.it;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.api.FerryServer;
import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import dev.ferry.node.process.RunningProcess;
import dev.ferry.node.settings.FerryConfig;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.http.javadsl.ConnectionContext;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.server.Directives;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.pki.pem.DERPrivateKeyLoader;
import org.apache.pekko.pki.pem.PEMDecoder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Cluster formation in Kubernetes without Kubernetes: a node runs with k8s/base/formation.conf
 * against a stand-in for the Kubernetes API (HTTPS with its own CA, a bearer token, a namespace,
 * one running pod: the node itself). The node's bootstrap must list the pods with the label
 * selector and the token, find itself as the only contact point and form the cluster, which its
 * readiness probe then reports.
 */
class KubernetesBootstrapIT {
  private static final String TOKEN = "k8s-service-account-token";
  private final List<String> requests = new CopyOnWriteArrayList<>();
  @TempDir Path dir;

  private static int freePort() throws Exception {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  /** A self-signed certificate for 127.0.0.1, as the API server's and as the CA the node trusts. */
  private SSLContext serverTls() throws Exception {
    Process p =
        new ProcessBuilder(
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                dir.resolve("api.key").toString(),
                "-out",
                dir.resolve("api.crt").toString())
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), out);
    PrivateKey key =
        DERPrivateKeyLoader.load(PEMDecoder.decode(Files.readString(dir.resolve("api.key"))));
    Certificate cert;
    try (InputStream in = Files.newInputStream(dir.resolve("api.crt"))) {
      cert = CertificateFactory.getInstance("X.509").generateCertificate(in);
    }
    KeyStore ks = KeyStore.getInstance("PKCS12");
    ks.load(null, null);
    ks.setKeyEntry("api", key, new char[0], new Certificate[] {cert});
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(ks, new char[0]);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(kmf.getKeyManagers(), null, null);
    return ctx;
  }

  @Test
  void aNodeFormsItsClusterFromWhatTheKubernetesApiReturns() throws Exception {
    // FerryConfig: its Pekko settings (a local provider here; mixed module versions allowed)
    ActorTestKit kit =
        ActorTestKit.create(
            FerryConfig.load(
                com.typesafe.config.ConfigFactory.parseString("pekko.actor.provider = local")));
    RunningProcess node = null;
    ServerBinding api = null;
    try {
      Route pods =
          Directives.pathPrefix(
              "api",
              () ->
                  Directives.extractRequest(
                      request -> {
                        requests.add(
                            request.getUri().toString()
                                + " "
                                + request
                                    .getHeader("Authorization")
                                    .map(h -> h.value())
                                    .orElse(""));
                        return Directives.complete(
                            HttpEntities.create(
                                ContentTypes.APPLICATION_JSON,
                                "{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"name\":\"ferry-control-0\"},"
                                    + "\"spec\":{\"containers\":[{\"name\":\"control\"}]},"
                                    + "\"status\":{\"phase\":\"Running\",\"podIP\":\"127.0.0.1\"}}]}"));
                      }));
      api =
          Http.get(kit.system())
              .newServerAt("127.0.0.1", 0)
              .enableHttps(ConnectionContext.httpsServer(serverTls()))
              .bind(pods)
              .toCompletableFuture()
              .get();
      Files.writeString(dir.resolve("token"), TOKEN);
      Files.writeString(dir.resolve("namespace"), "ferry");
      int management = freePort();
      Path repo = Path.of("..").toAbsolutePath().normalize();
      Files.writeString(
          dir.resolve("node.conf"),
          String.join(
              "\n",
              "include file(\"" + repo.resolve("k8s/base/formation.conf") + "\")",
              "ferry.server.agent = off",
              "ferry.node.host = \"k8s-node\"",
              "ferry.node.state-dir = \"" + dir.resolve("state") + "\"",
              "ferry.api.port = " + freePort(),
              "ferry.api.auth.token = \"bootstrap-test-token-0123456789\"",
              "ferry.management.port = " + management,
              "pekko.remote.artery.canonical.hostname = \"127.0.0.1\"",
              "pekko.remote.artery.canonical.port = " + freePort(),
              "pekko.management.http.port = " + freePort(),
              // one pod in this stand-in cluster; k8s/ asks for two to agree
              "pekko.management.cluster.bootstrap.contact-point-discovery.required-contact-point-nr = 1",
              "pekko.discovery.kubernetes-api.api-ca-path = \"" + dir.resolve("api.crt") + "\"",
              "pekko.discovery.kubernetes-api.api-token-path = \"" + dir.resolve("token") + "\"",
              "pekko.discovery.kubernetes-api.pod-namespace-path = \""
                  + dir.resolve("namespace")
                  + "\"",
              ""));
      node =
          new LocalProcessRunner()
              .start(
                  ProcessSpec.of(
                          Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                          "-Xmx256m",
                          "-XX:+UseSerialGC",
                          "-Dconfig.file=" + dir.resolve("node.conf"),
                          "-Dlogback.configurationFile=logback.xml",
                          "-cp",
                          System.getProperty("java.class.path"),
                          FerryServer.class.getName())
                      .withTimeout(Duration.ofMinutes(10))
                      .withEnv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
                      .withEnv(
                          "KUBERNETES_SERVICE_PORT", Integer.toString(api.localAddress().getPort()))
                      .withEnv("FERRY_CLUSTER_ADDRESS", "127.0.0.1"));
      Path log = dir.resolve("node.log");
      RunningProcess running = node;
      Thread pump =
          new Thread(
              () -> {
                try (InputStream in = running.stdout();
                    OutputStream out = Files.newOutputStream(log)) {
                  in.transferTo(out);
                } catch (Exception e) {
                  // the node stopped
                }
              });
      pump.setDaemon(true);
      pump.start();

      HttpClient http = HttpClient.newHttpClient();
      String ready = "http://127.0.0.1:" + management + "/health/ready";
      await()
          .atMost(Duration.ofSeconds(90))
          .pollInterval(Duration.ofMillis(500))
          .alias("the node is an Up member of the cluster it formed; see " + log)
          .until(
              () -> {
                try {
                  return http.send(
                              HttpRequest.newBuilder(URI.create(ready)).build(),
                              HttpResponse.BodyHandlers.ofString())
                          .statusCode()
                      == 200;
                } catch (java.io.IOException notYet) {
                  return false;
                }
              });
      assertTrue(
          requests.stream()
              .anyMatch(
                  r ->
                      java.net.URLDecoder.decode(r, StandardCharsets.UTF_8)
                              .contains(
                                  "/api/v1/namespaces/ferry/pods?labelSelector=app.kubernetes.io/name=ferry")
                          && r.endsWith(" Bearer " + TOKEN)),
          "the pods were listed with the label selector and the account's token: " + requests);
      String text = Files.readString(log);
      assertTrue(text.contains("cluster formation: bootstrap through the Kubernetes API"), text);
      assertTrue(
          text.contains("Initiating new cluster, self-joining"),
          "the bootstrap, not a seed node, formed the cluster:\n" + text);
    } finally {
      if (node != null) {
        node.kill();
      }
      if (api != null) {
        api.unbind();
      }
      kit.shutdownTestKit();
    }
  }
}
