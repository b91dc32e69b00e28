package dev.ferry.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.ferry.api.cli.ApiClient;
import dev.ferry.node.settings.FerryConfig;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;
import org.apache.pekko.http.javadsl.server.Directives;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The API's TLS: served from PEM files, trusted by a client that has the CA and by no other, and
 * required at start-up when the API listens beyond loopback.
 */
class ApiTlsTest {

  private static ApiSettings settings(String extra) {
    return ApiSettings.from(
        FerryConfig.load(
            ConfigFactory.parseString(
                "ferry.api.auth.token = \"tls-test-token-0123456789\"\n" + extra)));
  }

  @Test
  void beyondLoopbackTheApiNeedsTlsAndAToken() {
    IllegalArgumentException clear =
        assertThrows(
            IllegalArgumentException.class, () -> settings("ferry.api.interface = \"0.0.0.0\""));
    assertTrue(clear.getMessage().contains("without TLS"), clear.getMessage());
    IllegalArgumentException open =
        assertThrows(
            IllegalArgumentException.class,
            () ->
                settings(
                    "ferry.api.interface = \"10.0.0.5\"\nferry.api.auth.mode = none\n"
                        + "ferry.api.tls { enabled = on, key-file = k, cert-file = c }"));
    assertTrue(open.getMessage().contains("only listen on loopback"), open.getMessage());
    assertThrows(
        IllegalArgumentException.class, () -> settings("ferry.api.tls.enabled = on"), "files");
    settings("ferry.api.interface = \"127.0.0.1\"\nferry.api.auth.mode = none");
    settings(
        "ferry.api.interface = \"0.0.0.0\"\n"
            + "ferry.api.tls { enabled = on, key-file = k, cert-file = c }");
  }

  @Test
  void httpsFromPemFilesTrustedThroughTheCa(@TempDir Path dir) throws Exception {
    Path key = dir.resolve("tls.key");
    Path cert = dir.resolve("tls.crt");
    Process p =
        new ProcessBuilder(
                List.of(
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
                    key.toString(),
                    "-out",
                    cert.toString()))
            .redirectErrorStream(true)
            .start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertEquals(0, p.waitFor(), out);

    ActorTestKit kit =
        ActorTestKit.create(
            FerryConfig.load(ConfigFactory.parseString("pekko.actor.provider = local")));
    try {
      ServerBinding b =
          Http.get(kit.system())
              .newServerAt("127.0.0.1", 0)
              .enableHttps(ApiTls.server(key.toString(), cert.toString()))
              .bind(Directives.path("ping", () -> Directives.complete("{\"pong\":true}")))
              .toCompletableFuture()
              .get();
      String url = "https://127.0.0.1:" + b.localAddress().getPort();
      ApiClient trusting = new ApiClient(url, "t", cert);
      assertTrue(trusting.get("/ping").ok());

      HttpClient stranger = HttpClient.newHttpClient();
      assertThrows(
          javax.net.ssl.SSLHandshakeException.class,
          () ->
              stranger.send(
                  HttpRequest.newBuilder(URI.create(url + "/ping")).build(),
                  HttpResponse.BodyHandlers.ofString()));
      b.unbind().toCompletableFuture().get();
    } finally {
      kit.shutdownTestKit();
    }
  }
}
