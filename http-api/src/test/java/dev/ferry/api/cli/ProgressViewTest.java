package dev.ferry.api.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

class ProgressViewTest {
  private static final ObjectMapper JSON = new ObjectMapper();

  @Test
  void anUnknownOrAbsurdEtaShowsAsUnknown() throws Exception {
    assertEquals("?", ProgressView.eta(-1));
    assertEquals("?", ProgressView.eta(836_180));
    assertEquals("79s", ProgressView.eta(79));
    String line =
        ProgressView.line(
            "web-snap",
            JSON.readTree(
                "{\"state\":\"running\",\"progress\":{\"phase\":\"bulk-copy\",\"bytesDone\":0,"
                    + "\"bytesTotal\":445644800,\"bytesPerSecond\":0,\"etaSeconds\":-1}}"),
            "running",
            "host2");
    assertTrue(line.contains("eta     ? -> host2"), line);
  }
}
