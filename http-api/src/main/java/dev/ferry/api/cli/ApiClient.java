package dev.ferry.api.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Iterator;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * Ferry's HTTP API as the CLI needs it: JSON in and out, the bearer token, problem details turned
 * into one readable line, and Server-Sent Events read line by line.
 */
public final class ApiClient {
  static final ObjectMapper JSON = new ObjectMapper();

  private final URI base;
  private final String token;
  private final HttpClient http;

  public ApiClient(String url, String token) {
    this(url, token, null);
  }

  /** {@code caFile}: trust only this CA (PEM) for an https URL; null: the JVM's default trust. */
  public ApiClient(String url, String token, java.nio.file.Path caFile) {
    this.base = URI.create(url.endsWith("/") ? url.substring(0, url.length() - 1) : url);
    this.token = token == null || token.isBlank() ? null : token.strip();
    HttpClient.Builder b = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10));
    if (caFile != null) {
      b.sslContext(dev.ferry.api.ApiTls.trusting(caFile));
    }
    this.http = b.build();
  }

  /** What the API answered; {@code body} is JSON (a problem document for 4xx/5xx). */
  public record Answer(int status, JsonNode body) {
    public boolean ok() {
      return status >= 200 && status < 300;
    }
  }

  /** The API refused or could not be reached; the message is the one line to show. */
  public static final class ApiError extends RuntimeException {
    private static final long serialVersionUID = 1L;

    ApiError(String message) {
      super(message);
    }
  }

  public Answer get(String path) {
    return send("GET", path, null);
  }

  public Answer post(String path, Object body) {
    return send("POST", path, body);
  }

  public Answer delete(String path) {
    return send("DELETE", path, null);
  }

  /** Sends; a 4xx/5xx becomes an {@link ApiError} with the problem's detail. */
  public JsonNode call(String method, String path, Object body) {
    Answer a = send(method, path, body);
    if (!a.ok()) {
      throw new ApiError(problem(a));
    }
    return a.body();
  }

  private Answer send(String method, String path, Object body) {
    try {
      HttpRequest.Builder b =
          request(path)
              .timeout(Duration.ofSeconds(60))
              .method(
                  method,
                  body == null
                      ? HttpRequest.BodyPublishers.noBody()
                      : HttpRequest.BodyPublishers.ofString(JSON.writeValueAsString(body)));
      if (body != null) {
        b.header("Content-Type", "application/json");
      }
      HttpResponse<String> r = http.send(b.build(), HttpResponse.BodyHandlers.ofString());
      String text = r.body();
      JsonNode node =
          text == null || text.isBlank() ? JSON.createObjectNode() : parse(text, r.statusCode());
      return new Answer(r.statusCode(), node);
    } catch (IOException e) {
      throw unreachable(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApiError("interrupted");
    }
  }

  private static JsonNode parse(String text, int status) {
    try {
      return JSON.readTree(text);
    } catch (IOException e) {
      // not JSON (a proxy's page, say): keep the text for the message
      return JSON.createObjectNode().put("status", status).put("detail", text.strip());
    }
  }

  /**
   * Reads the event stream at {@code path} and hands each event's data to {@code onEvent} until it
   * returns true (done) or the stream ends; returns whether it was done.
   */
  public boolean events(String path, Predicate<JsonNode> onEvent) {
    try {
      HttpResponse<Stream<String>> r =
          http.send(
              request(path).header("Accept", "text/event-stream").GET().build(),
              HttpResponse.BodyHandlers.ofLines());
      try (Stream<String> lines = r.body()) {
        if (r.statusCode() != 200) {
          StringBuilder text = new StringBuilder();
          lines.forEach(text::append);
          throw new ApiError(problem(new Answer(r.statusCode(), parse(text.toString(), 0))));
        }
        Iterator<String> it = lines.iterator();
        while (it.hasNext()) {
          String line = it.next();
          if (line.startsWith("data:") && onEvent.test(JSON.readTree(line.substring(5)))) {
            return true;
          }
        }
      }
      return false;
    } catch (IOException e) {
      throw unreachable(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new ApiError("interrupted");
    }
  }

  private HttpRequest.Builder request(String path) {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path));
    if (token != null) {
      b.header("Authorization", "Bearer " + token);
    }
    return b;
  }

  private ApiError unreachable(IOException e) {
    String why = e instanceof ConnectException ? "connection refused" : String.valueOf(e);
    return new ApiError("cannot reach the Ferry API at " + base + ": " + why);
  }

  /** "refused (409): host1 is already draining: d-..." from a problem document. */
  static String problem(Answer a) {
    JsonNode b = a.body();
    String detail = b.path("detail").asText("");
    if (detail.isEmpty()) {
      detail = b.path("title").asText(b.toString());
    }
    return "refused (" + a.status() + "): " + detail;
  }
}
