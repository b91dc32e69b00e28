package dev.ferry.api;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.regex.Pattern;
import org.apache.pekko.event.LoggingAdapter;
import org.apache.pekko.http.ParsingErrorHandler;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.scaladsl.model.ErrorInfo;
import org.apache.pekko.http.scaladsl.model.StatusCode;
import org.apache.pekko.http.scaladsl.settings.ServerSettings;

/**
 * Refusals made below the routes, as problem documents like every other refusal: the HTTP layer's
 * own (a request line, URI or header it cannot parse: 400, 414, 431, 501, 505), installed as {@code
 * pekko.http.server.parsing.error-handler}, and the text of Pekko's default rejections, which may
 * name Java types or echo a whole value.
 */
public final class HttpRefusals extends ParsingErrorHandler {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Pattern INTERNAL =
      Pattern.compile("[A-Za-z]+(Exception|Error)\\b|\\bjava\\.|\\bscala\\.|\\bpekko\\.");
  private static final int MAX_DETAIL = 160;

  /** What a refusal says: Pekko's text when it is short and names no Java type, else the reason. */
  static String detail(int status, String reason, String text) {
    if (status == 413) {
      return "the request is larger than this server accepts";
    }
    String t = text == null ? "" : text.strip();
    if (t.isEmpty() || INTERNAL.matcher(t).find()) {
      return reason;
    }
    StringBuilder sb = new StringBuilder();
    for (char c : t.toCharArray()) {
      if (sb.length() >= MAX_DETAIL) {
        sb.append("...");
        break;
      }
      sb.append(c < 0x20 || c == 0x7f ? ' ' : c);
    }
    return sb.toString();
  }

  @Override
  public HttpResponse handle(
      StatusCode status, ErrorInfo error, LoggingAdapter log, ServerSettings settings) {
    log.debug("refused an unparsable request: {} {}", status.intValue(), error.summary());
    Problem p =
        Problem.of(
            status.intValue(),
            "unparsable-request",
            status.reason(),
            detail(status.intValue(), status.reason(), error.summary()));
    byte[] body;
    try {
      body = JSON.writeValueAsBytes(p);
    } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
      body = new byte[0];
    }
    return HttpResponse.create()
        .withStatus(status.intValue())
        .withEntity(HttpEntities.create(FerryRoutes.PROBLEM_JSON, body));
  }
}
