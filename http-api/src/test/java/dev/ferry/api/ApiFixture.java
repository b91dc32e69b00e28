package dev.ferry.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.ferry.node.scheduler.FakeAgent;
import dev.ferry.node.scheduler.Scheduler;
import dev.ferry.node.scheduler.SchedulerJournal;
import dev.ferry.node.scheduler.SchedulerSettings;
import dev.ferry.node.settings.FerryConfig;
import dev.ferry.protocol.SchedulerProtocol;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.UUID;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.http.javadsl.Http;
import org.apache.pekko.http.javadsl.ServerBinding;

/**
 * The HTTP API over a real scheduler (H2 in memory) and fake agents host1..host3, on a port chosen
 * by the OS. host1 runs vm-a..vm-d. For tests of the API and of its clients.
 */
public final class ApiFixture implements AutoCloseable {
  public final ActorTestKit kit;
  public final FakeAgent host1;
  public final FakeAgent host2;
  public final ActorRef<SchedulerProtocol.Command> scheduler;
  public final String base;
  private final ServerBinding binding;

  private ApiFixture(
      ActorTestKit kit,
      FakeAgent host1,
      FakeAgent host2,
      ActorRef<SchedulerProtocol.Command> scheduler,
      ServerBinding binding) {
    this.kit = kit;
    this.host1 = host1;
    this.host2 = host2;
    this.scheduler = scheduler;
    this.binding = binding;
    this.base = "http://127.0.0.1:" + binding.localAddress().getPort();
  }

  /** host1's driver token (ferry.api.auth.host-tokens-file): its own migrations only. */
  public static final String HOST1_TOKEN = "host1-driver-token-0123456789";

  /** Starts it and waits until the API knows the three hosts and is ready. */
  public static ApiFixture start(String token) throws Exception {
    java.nio.file.Path hostTokens = java.nio.file.Files.createTempFile("ferry-host-tokens", "");
    hostTokens.toFile().deleteOnExit();
    java.nio.file.Files.writeString(
        hostTokens,
        "# host token\nhost1 " + HOST1_TOKEN + "\n\nhost2 host2-driver-token-0123456789\n");
    Config c =
        FerryConfig.load(
            ConfigFactory.parseString(
                """
                    pekko.actor.provider = local
                    ferry.scheduler.inventory.interval = 100ms
                    ferry.scheduler.journal.url = "jdbc:h2:mem:api-%s;DB_CLOSE_DELAY=-1"
                    ferry.api.auth.token = "%s"
                    ferry.api.auth.host-tokens-file = "%s"
                    ferry.api.hosts-refresh = 100ms
                    ferry.api.events-interval = 100ms
                    """
                    .formatted(UUID.randomUUID(), token, hostTokens)));
    SchedulerJournal.createSchema(c);
    ActorTestKit kit = ActorTestKit.create(c);
    FakeAgent host1 = new FakeAgent(kit, "host1");
    FakeAgent host2 = new FakeAgent(kit, "host2");
    new FakeAgent(kit, "host3");
    host1.run("vm-a", "vm-b", "vm-c", "vm-d");
    ActorRef<SchedulerProtocol.Command> scheduler =
        kit.spawn(
            Scheduler.create(SchedulerSettings.from(c), System::currentTimeMillis), "scheduler");
    ApiSettings api = ApiSettings.from(c).withPort(0);
    HostDirectory hosts = new HostDirectory(kit.system(), scheduler, api.hostsRefresh());
    FerryRoutes routes = new FerryRoutes(kit.system(), scheduler, api, hosts, () -> true);
    ServerBinding binding =
        Http.get(kit.system())
            .newServerAt("127.0.0.1", 0)
            .adaptSettings(FerryRoutes::serverSettings)
            .bind(routes.routes())
            .toCompletableFuture()
            .get();
    ApiFixture f = new ApiFixture(kit, host1, host2, scheduler, binding);
    HttpClient http = HttpClient.newHttpClient();
    long end = System.currentTimeMillis() + 10_000;
    // every host's inventory, host1's with its four VMs: a test's first submission must not race
    // the first inventory round (it would be refused as "vm-b is not running on host1")
    while (System.currentTimeMillis() < end
        && (!knowsEveryHost(f.call("GET", "/api/v1/hosts", null, token).body())
            || knownHosts(hosts) < 3)) {
      Thread.sleep(100);
    }
    while (System.currentTimeMillis() < end
        && http.send(
                    HttpRequest.newBuilder(URI.create(f.base + "/health/ready")).build(),
                    HttpResponse.BodyHandlers.ofString())
                .statusCode()
            != 200) {
      Thread.sleep(100);
    }
    return f;
  }

  private static final HttpClient HTTP = HttpClient.newHttpClient();

  /** A request to the API with {@code token} (none if null); a body goes as JSON. */
  public HttpResponse<String> call(String method, String path, String body, String token)
      throws Exception {
    HttpRequest.Builder b =
        HttpRequest.newBuilder(URI.create(base + path))
            .timeout(java.time.Duration.ofSeconds(20))
            .method(
                method,
                body == null
                    ? HttpRequest.BodyPublishers.noBody()
                    : HttpRequest.BodyPublishers.ofString(body));
    if (body != null) {
      b.header("Content-Type", "application/json");
    }
    if (token != null) {
      b.header("Authorization", "Bearer " + token);
    }
    return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
  }

  /**
   * How many hosts the API's directory knows; none while its first refresh is pending (it refuses
   * then, and that once failed a fixture's start).
   */
  private static int knownHosts(HostDirectory hosts) {
    try {
      return hosts.known().size();
    } catch (ApiException notYet) {
      return 0;
    }
  }

  private static boolean knowsEveryHost(String hostsJson) throws Exception {
    java.util.Map<String, Integer> vms = new java.util.HashMap<>();
    JsonNode root = new ObjectMapper().readTree(hostsJson);
    for (JsonNode h : root.path("hosts")) {
      if (h.path("reachable").asBoolean()) {
        vms.put(h.path("host").asText(), h.path("vms").asInt());
      }
    }
    return vms.size() == 3 && vms.getOrDefault("host1", 0) == 4;
  }

  @Override
  public void close() {
    binding.unbind();
    kit.shutdownTestKit();
  }
}
