package dev.ferry.api.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.node.process.LocalProcessRunner;
import dev.ferry.node.process.ProcessSpec;
import dev.ferry.node.process.RunningProcess;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Base64;
import java.util.List;

/**
 * Debian's headless Chromium driven through chromedriver's W3C WebDriver HTTP protocol, with the
 * JDK's HTTP client (no Selenium): open a page, run a script in it, take a screenshot.
 */
final class HeadlessChromium implements AutoCloseable {
  private static final ObjectMapper json = new ObjectMapper();
  private static final HttpClient http = HttpClient.newHttpClient();
  private static final LocalProcessRunner runner = new LocalProcessRunner();

  private final RunningProcess driver;
  private final String base;
  private final String session;

  private HeadlessChromium(RunningProcess driver, String base, String session) {
    this.driver = driver;
    this.base = base;
    this.session = session;
  }

  /** {@code extraArgs}: more Chromium flags (a certificate pin, say). */
  static HeadlessChromium start(String... extraArgs) throws Exception {
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    RunningProcess driver =
        runner.start(
            ProcessSpec.of(List.of("chromedriver", "--port=" + port))
                .withTimeout(Duration.ofMinutes(30)));
    String base = "http://127.0.0.1:" + port;
    try {
      long end = System.currentTimeMillis() + 30_000;
      while (true) {
        try {
          if (send("GET", base + "/status", null).at("/value/ready").asBoolean()) {
            break;
          }
        } catch (IOException notYet) {
          // not listening yet
        }
        if (System.currentTimeMillis() > end) {
          throw new IllegalStateException("chromedriver did not get ready");
        }
        Thread.sleep(200);
      }
      ObjectNode caps = json.createObjectNode();
      ObjectNode always = caps.putObject("capabilities").putObject("alwaysMatch");
      always.put("browserName", "chrome");
      ObjectNode chrome = always.putObject("goog:chromeOptions");
      chrome.put("binary", "/usr/bin/chromium");
      // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start
      chrome
          .putArray("args")
          .add("--headless=new")
          .add("--no-sandbox")
          .add("--disable-gpu")
          .add("--disable-dev-shm-usage")
          .add("--window-size=1280,1000");
      for (String a : extraArgs) {
        ((com.fasterxml.jackson.databind.node.ArrayNode) chrome.get("args")).add(a);
      }
      JsonNode created = send("POST", base + "/session", caps);
      String session = created.at("/value/sessionId").asText();
      if (session.isEmpty()) {
        throw new IllegalStateException("no WebDriver session: " + created);
      }
      return new HeadlessChromium(driver, base, session);
    } catch (Exception e) {
      driver.kill();
      throw e;
    }
  }

  void open(String url) throws Exception {
    ObjectNode body = json.createObjectNode().put("url", url);
    send("POST", base + "/session/" + session + "/url", body);
  }

  /** Runs {@code script} (a function body; {@code return} gives the result) in the page. */
  JsonNode eval(String script) throws Exception {
    ObjectNode body = json.createObjectNode().put("script", script);
    body.putArray("args");
    return send("POST", base + "/session/" + session + "/execute/sync", body).path("value");
  }

  void screenshot(Path png) throws Exception {
    String b64 =
        send("GET", base + "/session/" + session + "/screenshot", null).path("value").asText();
    Files.createDirectories(png.toAbsolutePath().getParent());
    Files.write(png, Base64.getDecoder().decode(b64));
  }

  private static JsonNode send(String method, String url, JsonNode body) throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(url))
            .timeout(Duration.ofSeconds(60))
            .header("Content-Type", "application/json")
            .method(
                method,
                body == null
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(json.writeValueAsString(body)));
    HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    JsonNode reply = json.readTree(r.body());
    if (r.statusCode() != 200) {
      throw new IllegalStateException(method + " " + url + ": " + r.statusCode() + " " + reply);
    }
    return reply;
  }

  @Override
  public void close() {
    try {
      send("DELETE", base + "/session/" + session, null);
    } catch (Exception e) {
      // the browser goes with the driver anyway
    } finally {
      driver.kill();
    }
  }
}
