package dev.ferry.api;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.type.LogicalType;
import dev.ferry.protocol.SchedulerProtocol;
import dev.ferry.protocol.SchedulerProtocol.Error;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeoutException;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.marshallers.jackson.Jackson;
import org.apache.pekko.http.javadsl.marshalling.Marshaller;
import org.apache.pekko.http.javadsl.marshalling.sse.EventStreamMarshalling;
import org.apache.pekko.http.javadsl.model.ContentType;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpCharsets;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpHeader;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.MediaTypes;
import org.apache.pekko.http.javadsl.model.RequestEntity;
import org.apache.pekko.http.javadsl.model.StatusCode;
import org.apache.pekko.http.javadsl.model.StatusCodes;
import org.apache.pekko.http.javadsl.model.headers.HttpChallenge;
import org.apache.pekko.http.javadsl.model.headers.WWWAuthenticate;
import org.apache.pekko.http.javadsl.model.sse.ServerSentEvent;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.ExceptionHandler;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.RejectionHandler;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.http.javadsl.settings.ServerSettings;
import org.apache.pekko.http.javadsl.unmarshalling.Unmarshaller;
import org.apache.pekko.stream.javadsl.Source;

/**
 * The HTTP API: {@code /api/v1/...} for migrations, hosts, drains and rebalancing, {@code
 * /health/...} for probes, and the OpenAPI document at {@code /api/v1/openapi.json}. Every request
 * is checked here (authentication, JSON shape, names, known hosts) before a message reaches the
 * scheduler; errors are problem details.
 */
public final class FerryRoutes extends AllDirectives {
  static final ContentType PROBLEM_JSON =
      ContentTypes.create(
          MediaTypes.applicationWithFixedCharset("problem+json", HttpCharsets.UTF_8));

  private final ActorSystem<?> system;
  private final ActorRef<SchedulerProtocol.Command> scheduler;
  private final ApiSettings settings;
  private final HostDirectory hosts;
  private final Supplier<Boolean> memberUp;
  private final ObjectMapper mapper;
  private final byte[] openApi;
  private final byte[] statusPage;
  private final Credentials credentials;

  public FerryRoutes(
      ActorSystem<?> system,
      ActorRef<SchedulerProtocol.Command> scheduler,
      ApiSettings settings,
      HostDirectory hosts,
      Supplier<Boolean> memberUp) {
    this.system = system;
    this.scheduler = scheduler;
    this.settings = settings;
    this.hosts = hosts;
    this.memberUp = memberUp;
    this.mapper = strictJson();
    this.openApi = resource("openapi.json");
    this.statusPage = resource("status.html");
    this.credentials = Credentials.of(settings.token(), settings.hostTokensFile());
  }

  /**
   * Request bodies are read exactly as documented: unknown fields, duplicate keys, trailing text
   * after the value, enums given as numbers (a strategy of 2 once meant "cold": the guest powered
   * off), and any scalar coercion (a string for a number or a boolean, a number for a string or a
   * boolean, 1.5 for an integer, "NaN") are refused, not guessed at.
   */
  static ObjectMapper strictJson() {
    return JsonMapper.builder()
        .findAndAddModules()
        .defaultPropertyInclusion(
            JsonInclude.Value.construct(JsonInclude.Include.NON_NULL, JsonInclude.Include.NON_NULL))
        .enable(
            DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES,
            DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES,
            DeserializationFeature.FAIL_ON_NUMBERS_FOR_ENUMS,
            // "{}}" is not an empty object: without this Jackson reads the first value and
            // ignores the rest (the fuzz test found a drain started by such a body)
            DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
        .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
        .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
        .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
        .withCoercionConfig(
            LogicalType.Textual,
            c ->
                c.setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail))
        .withCoercionConfig(
            LogicalType.Boolean,
            c ->
                c.setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.String, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.EmptyString, CoercionAction.Fail))
        .withCoercionConfig(
            LogicalType.Integer,
            c ->
                c.setCoercion(CoercionInputShape.String, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.EmptyString, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.Float, CoercionAction.Fail))
        .withCoercionConfig(
            LogicalType.Float,
            c ->
                c.setCoercion(CoercionInputShape.String, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.EmptyString, CoercionAction.Fail))
        .withCoercionConfig(
            LogicalType.Enum,
            c ->
                c.setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                    .setCoercion(CoercionInputShape.EmptyString, CoercionAction.Fail))
        .build();
  }

  private static byte[] resource(String name) {
    try (InputStream in = FerryRoutes.class.getResourceAsStream(name)) {
      return in.readAllBytes();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public Route routes() {
    return handleExceptions(
        exceptions(),
        () ->
            handleRejections(
                rejections(),
                () ->
                    pathAsSent(
                        () ->
                            concat(
                                pathPrefix("health", this::health),
                                path(
                                    "status",
                                    () ->
                                        get(
                                            () ->
                                                complete(
                                                    HttpEntities.create(
                                                        ContentTypes.TEXT_HTML_UTF8, statusPage)))),
                                pathPrefix(
                                    PathMatchers.segment("api").slash("v1"),
                                    () ->
                                        concat(
                                            path(
                                                "openapi.json",
                                                () ->
                                                    get(
                                                        () ->
                                                            complete(
                                                                HttpEntities.create(
                                                                    ContentTypes.APPLICATION_JSON,
                                                                    openApi)))),
                                            authenticated(
                                                caller ->
                                                    caller instanceof Credentials.HostDriver driver
                                                        ? driverRoutes(driver)
                                                        : concat(
                                                            path(
                                                                "events",
                                                                () -> get(this::overview)),
                                                            pathPrefix(
                                                                "migrations",
                                                                () -> migrations(caller)),
                                                            pathPrefix("hosts", this::hosts),
                                                            pathPrefix("vms", this::vms),
                                                            pathPrefix("drains", this::drains),
                                                            pathPrefix(
                                                                "rebalance",
                                                                this::rebalance)))))))));
  }

  /**
   * The settings the API's server needs: the HTTP layer's own refusals as problem documents, and
   * the request's URI as sent (a {@code Raw-Request-URI} header) for {@link #pathAsSent}.
   */
  public static ServerSettings serverSettings(ServerSettings s) {
    return s.withParsingErrorHandler(HttpRefusals.class.getName()).withRawRequestUriHeader(true);
  }

  /**
   * Paths are matched as sent: Pekko resolves {@code .} and {@code ..} segments (also as {@code
   * %2e}) before routing, so {@code /api/v1/migrations/../events} would reach the cluster-wide
   * event stream. A request whose path has one is refused instead.
   */
  private Route pathAsSent(Supplier<Route> inner) {
    return extractRequest(
        request -> {
          for (HttpHeader h : request.getHeaders()) {
            if (h.is("raw-request-uri") && hasDotSegment(h.value())) {
              return problem(
                  Problem.of(
                      400,
                      "dot-segment",
                      "The path has a dot segment",
                      "a path segment is . or ..: paths are matched as sent, not resolved"));
            }
          }
          return inner.get();
        });
  }

  static boolean hasDotSegment(String rawUri) {
    String path = rawUri.split("[?#]", 2)[0];
    for (String segment : path.split("/", -1)) {
      String s = segment.replace("%2e", ".").replace("%2E", ".");
      if (s.equals(".") || s.equals("..")) {
        return true;
      }
    }
    return false;
  }

  /**
   * What a host token may do: its own host's migrations (submit, watch, cancel) and where a VM
   * runs. Anything else is forbidden, whether or not it exists.
   */
  private Route driverRoutes(Credentials.HostDriver driver) {
    return concat(
        pathPrefix("migrations", () -> migrations(driver)),
        pathPrefix("vms", this::vms),
        extractUnmatchedPath(rest -> forbidden(driver, "this")));
  }

  private Route forbidden(Credentials.HostDriver driver, String what) {
    return problem(
        Problem.of(
            403,
            "forbidden",
            "Forbidden",
            "the token of host "
                + driver.host()
                + " may only submit, watch and cancel migrations from "
                + driver.host()
                + " and ask where a VM runs, not "
                + what));
  }

  /** {@code inner} if the caller may see job {@code id}; a host only its own host's jobs. */
  private Route ownJob(Credentials.Caller caller, String id, Supplier<Route> inner) {
    if (!(caller instanceof Credentials.HostDriver driver)) {
      return inner.get();
    }
    return onSuccess(
        ask((ActorRef<SchedulerProtocol.JobReply> r) -> new SchedulerProtocol.GetJob(id, r)),
        j ->
            j.job() == null || j.job().request().source().equals(driver.host())
                ? inner.get()
                : forbidden(driver, "migration " + id + " from " + j.job().request().source()));
  }

  // ---- probes

  private Route health() {
    return concat(
        path("live", () -> get(() -> complete(StatusCodes.OK, new Status("live"), json()))),
        path(
            "ready",
            () ->
                get(
                    () ->
                        memberUp.get() && hosts.fresh()
                            ? complete(StatusCodes.OK, new Status("ready"), json())
                            : problem(
                                Problem.of(
                                    503,
                                    "not-ready",
                                    "Not ready",
                                    memberUp.get()
                                        ? "the scheduler has not answered recently"
                                        : "this node is not an Up cluster member yet")))));
  }

  record Status(String status) {}

  // ---- authentication

  private Route authenticated(Function<Credentials.Caller, Route> inner) {
    if (!settings.tokenRequired()) {
      return inner.apply(new Credentials.Admin());
    }
    return optionalHeaderValueByName(
        "Authorization",
        header -> {
          Optional<Credentials.Caller> caller =
              header
                  .filter(h -> h.startsWith("Bearer "))
                  .map(h -> h.substring(7).strip())
                  .flatMap(credentials::identify);
          if (caller.isEmpty()) {
            return respondWithHeader(
                WWWAuthenticate.create(HttpChallenge.create("Bearer", "ferry")),
                () ->
                    problem(
                        Problem.of(
                            401,
                            "unauthorized",
                            "Authentication required",
                            header.isPresent()
                                ? "the bearer token is not valid"
                                : "send Authorization: Bearer <token>")));
          }
          return inner.apply(caller.get());
        });
  }

  // ---- migrations

  private Route migrations(Credentials.Caller caller) {
    return concat(
        pathEnd(
            () ->
                concat(
                    post(
                        () ->
                            body(
                                Requests.Submit.class,
                                b ->
                                    optionalHeaderValueByName(
                                        "Idempotency-Key",
                                        key -> submit(caller, b, key.orElse(b.idempotencyKey()))))),
                    get(
                        () ->
                            caller instanceof Credentials.HostDriver driver
                                ? forbidden(driver, "the list of migrations")
                                : parameterOptional(
                                    "active",
                                    active ->
                                        parameterOptional(
                                            "limit",
                                            limit ->
                                                list(
                                                    active.map(this::bool).orElse(false),
                                                    limit.map(this::limit).orElse(100))))))),
        pathPrefix(
            PathMatchers.segment(),
            raw -> {
              String id = Requests.id(raw);
              return ownJob(
                  caller,
                  id,
                  () ->
                      concat(
                          pathEnd(
                              () ->
                                  concat(
                                      get(
                                          () ->
                                              job(
                                                  ask(r -> new SchedulerProtocol.GetJob(id, r)),
                                                  StatusCodes.OK)),
                                      delete(
                                          () ->
                                              parameterOptional(
                                                  "reason",
                                                  reason ->
                                                      job(
                                                          ask(
                                                              r ->
                                                                  new SchedulerProtocol.CancelJob(
                                                                      id,
                                                                      reason
                                                                          .map(Requests::reason)
                                                                          .orElse("cancelled"),
                                                                      r)),
                                                          StatusCodes.ACCEPTED))))),
                          path("events", () -> get(() -> events(id)))));
            }));
  }

  /** Where a VM is: an empty list when no reachable host has it. */
  private Route vms() {
    return path(
        PathMatchers.segment(),
        raw ->
            get(
                () -> {
                  String vm = Requests.vm(raw);
                  return onSuccess(
                      ask(
                          (ActorRef<SchedulerProtocol.VmReply> r) ->
                              new SchedulerProtocol.GetVm(vm, r)),
                      v -> complete(StatusCodes.OK, v, json()));
                }));
  }

  /** A boolean query parameter: exactly true or false, nothing read as false by accident. */
  private boolean bool(String s) {
    return switch (s) {
      case "true" -> true;
      case "false" -> false;
      default ->
          throw ApiException.invalid(
              "active: must be true or false, not '" + Requests.clip(s) + "'");
    };
  }

  private int limit(String s) {
    try {
      int n = Integer.parseInt(s);
      if (n < 0 || n > 10_000) {
        throw ApiException.invalid("limit must be between 0 and 10000");
      }
      return n;
    } catch (NumberFormatException e) {
      throw ApiException.invalid("limit must be a number");
    }
  }

  private Route submit(Credentials.Caller caller, Requests.Submit b, String key) {
    if (key != null && !key.isEmpty()) {
      Requests.id(key);
    }
    SchedulerProtocol.MigrationRequest request =
        Requests.migration(b, hosts.known(), settings.maxDeadlineAhead());
    if (caller instanceof Credentials.HostDriver driver
        && !request.source().equals(driver.host())) {
      return forbidden(driver, "a migration from " + request.source());
    }
    return job(
        ask(r -> new SchedulerProtocol.Submit(request, key == null ? "" : key, r)),
        StatusCodes.ACCEPTED);
  }

  private Route list(boolean activeOnly, int limit) {
    return onSuccess(
        ask(
            (ActorRef<SchedulerProtocol.JobsReply> r) ->
                new SchedulerProtocol.ListJobs(activeOnly, limit, r)),
        jobs -> complete(StatusCodes.OK, jobs, json()));
  }

  private Route job(CompletionStage<SchedulerProtocol.JobReply> reply, StatusCode ok) {
    return reply(reply, SchedulerProtocol.JobReply::error, SchedulerProtocol.JobReply::job, ok);
  }

  /** A scheduler reply as the value it carries, or as the problem its error maps to. */
  private <R, V> Route reply(
      CompletionStage<R> reply, Function<R, Error> error, Function<R, V> value, StatusCode ok) {
    return onSuccess(
        reply,
        r ->
            error.apply(r) != null
                ? problem(problemOf(error.apply(r)))
                : complete(ok, value.apply(r), json()));
  }

  /**
   * Server-Sent Events: the job as JSON ({@code event: progress}) every interval while it is queued
   * or running, then once more as {@code event: end} when it reached a terminal state.
   */
  private Route events(String id) {
    return onSuccess(
        ask((ActorRef<SchedulerProtocol.JobReply> r) -> new SchedulerProtocol.GetJob(id, r)),
        first -> {
          if (first.error() != null) {
            return problem(problemOf(first.error()));
          }
          Source<ServerSentEvent, org.apache.pekko.NotUsed> stream =
              Source.tick(Duration.ZERO, settings.eventsInterval(), "tick")
                  .mapAsync(
                      1,
                      t ->
                          ask(
                              (ActorRef<SchedulerProtocol.JobReply> r) ->
                                  new SchedulerProtocol.GetJob(id, r)))
                  .takeWhile(
                      r -> r.job() != null && !r.job().state().terminal(), /* inclusive */ true)
                  .map(
                      r ->
                          r.job() == null
                              ? ServerSentEvent.create(r.error().message(), "error")
                              : ServerSentEvent.create(
                                  mapper.writeValueAsString(r.job()),
                                  r.job().state().terminal() ? "end" : "progress"))
                  .mapMaterializedValue(m -> org.apache.pekko.NotUsed.getInstance());
          return completeOK(stream, EventStreamMarshalling.toEventStream());
        });
  }

  /** What the status page shows: hosts, migrations (active and recent) and drains at once. */
  record Overview(
      SchedulerProtocol.HostsReply hosts,
      List<SchedulerProtocol.JobView> migrations,
      List<SchedulerProtocol.DrainView> drains) {}

  private CompletionStage<Overview> overviewNow() {
    CompletionStage<SchedulerProtocol.HostsReply> h = ask(SchedulerProtocol.GetHosts::new);
    CompletionStage<SchedulerProtocol.JobsReply> j =
        ask(r -> new SchedulerProtocol.ListJobs(false, 20, r));
    CompletionStage<SchedulerProtocol.DrainsReply> d = ask(SchedulerProtocol.ListDrains::new);
    return h.thenCompose(
        hosts ->
            j.thenCombine(d, (jobs, drains) -> new Overview(hosts, jobs.jobs(), drains.drains())));
  }

  /**
   * {@code GET /api/v1/events}: the cluster's overview as Server-Sent Events, one {@code overview}
   * event per events-interval, until the client goes away. A scheduler that does not answer in time
   * gives an {@code unavailable} event, and the stream goes on.
   */
  private Route overview() {
    Source<ServerSentEvent, org.apache.pekko.NotUsed> stream =
        Source.tick(Duration.ZERO, settings.eventsInterval(), "tick")
            .mapAsync(
                1,
                t ->
                    overviewNow()
                        .thenApply(
                            o -> {
                              try {
                                return ServerSentEvent.create(
                                    mapper.writeValueAsString(o), "overview");
                              } catch (IOException e) {
                                throw new UncheckedIOException(e);
                              }
                            })
                        .exceptionally(
                            e ->
                                ServerSentEvent.create(
                                    "the scheduler did not answer", "unavailable")))
            .mapMaterializedValue(m -> org.apache.pekko.NotUsed.getInstance());
    return completeOK(stream, EventStreamMarshalling.toEventStream());
  }

  // ---- hosts and drains

  private Route hosts() {
    return concat(
        pathEnd(
            () ->
                get(
                    () ->
                        onSuccess(
                            ask(
                                (ActorRef<SchedulerProtocol.HostsReply> r) ->
                                    new SchedulerProtocol.GetHosts(r)),
                            h -> complete(StatusCodes.OK, h, json())))),
        pathPrefix(
            PathMatchers.segment(),
            raw ->
                concat(
                    path(
                        "drain",
                        () ->
                            post(
                                () ->
                                    bodyOrEmpty(
                                        Requests.Drain.class,
                                        new Requests.Drain(null, null, null),
                                        b -> drain(raw, b)))),
                    path(
                        "enable",
                        () ->
                            post(
                                () -> {
                                  String host = Requests.host("host", raw, hosts.known());
                                  return onSuccess(
                                      ask(
                                          (ActorRef<SchedulerProtocol.HostsReply> r) ->
                                              new SchedulerProtocol.EnableHost(host, r)),
                                      h ->
                                          h.hosts().stream()
                                                  .anyMatch(
                                                      v ->
                                                          v.host().equals(host)
                                                              && v.state().equals("draining"))
                                              ? problem(
                                                  Problem.of(
                                                      409,
                                                      "conflict",
                                                      "Conflict",
                                                      host
                                                          + " is draining; cancel the drain"
                                                          + " first"))
                                              : complete(StatusCodes.OK, h, json()));
                                })))));
  }

  private Route drain(String rawHost, Requests.Drain b) {
    String host = Requests.host("host", rawHost, hosts.known());
    long deadline =
        b.deadline() == null
            ? 0
            : Requests.deadline("deadline", b.deadline(), settings.maxDeadlineAhead());
    SchedulerProtocol.DrainRequest request =
        new SchedulerProtocol.DrainRequest(
            host,
            deadline,
            Boolean.TRUE.equals(b.coldFallback()),
            Requests.options(b.options(), settings.maxDeadlineAhead()));
    return drainReply(ask(r -> new SchedulerProtocol.StartDrain(request, r)), StatusCodes.ACCEPTED);
  }

  private Route drains() {
    return concat(
        pathEnd(
            () ->
                get(
                    () ->
                        onSuccess(
                            ask(
                                (ActorRef<SchedulerProtocol.DrainsReply> r) ->
                                    new SchedulerProtocol.ListDrains(r)),
                            d -> complete(StatusCodes.OK, d, json())))),
        path(
            PathMatchers.segment(),
            raw -> {
              String id = Requests.id(raw);
              return concat(
                  get(
                      () ->
                          drainReply(
                              ask(r -> new SchedulerProtocol.GetDrain(id, r)), StatusCodes.OK)),
                  delete(
                      () ->
                          drainReply(
                              ask(r -> new SchedulerProtocol.CancelDrain(id, r)), StatusCodes.OK)));
            }));
  }

  private Route drainReply(CompletionStage<SchedulerProtocol.DrainReply> reply, StatusCode ok) {
    return reply(
        reply, SchedulerProtocol.DrainReply::error, SchedulerProtocol.DrainReply::drain, ok);
  }

  // ---- rebalancing

  private Route rebalance() {
    return concat(
        path(
            "plan",
            () ->
                post(
                    () ->
                        body(
                            Requests.Rebalance.class,
                            b ->
                                plan(
                                    ask(
                                        r ->
                                            new SchedulerProtocol.PlanRebalance(
                                                rebalanceRequest(b), r)))))),
        path(
            "apply",
            () ->
                post(
                    () ->
                        body(
                            Requests.Rebalance.class,
                            b ->
                                plan(
                                    ask(
                                        r ->
                                            new SchedulerProtocol.ApplyRebalance(
                                                rebalanceRequest(b), r)))))));
  }

  private SchedulerProtocol.RebalanceRequest rebalanceRequest(Requests.Rebalance b) {
    double threshold = b.threshold() == null ? 0.2 : b.threshold();
    if (!(threshold >= 0 && threshold <= 1)) { // written so that NaN fails too
      throw ApiException.invalid("threshold must be between 0 and 1");
    }
    int maxMoves = b.maxMoves() == null ? 10 : b.maxMoves();
    if (maxMoves < 1 || maxMoves > 1000) {
      throw ApiException.invalid("maxMoves must be between 1 and 1000");
    }
    return new SchedulerProtocol.RebalanceRequest(
        b.policy() == null ? SchedulerProtocol.Policy.BALANCE : b.policy(),
        threshold,
        maxMoves,
        Requests.options(b.options(), settings.maxDeadlineAhead()));
  }

  private Route plan(CompletionStage<SchedulerProtocol.PlanReply> reply) {
    return reply(
        reply,
        SchedulerProtocol.PlanReply::error,
        SchedulerProtocol.PlanReply::plan,
        StatusCodes.OK);
  }

  // ---- plumbing

  private <T> CompletionStage<T> ask(Function<ActorRef<T>, SchedulerProtocol.Command> message) {
    return AskPattern.<SchedulerProtocol.Command, T>ask(
        scheduler, message::apply, settings.askTimeout(), system.scheduler());
  }

  private <T> Route body(Class<T> type, Function<T, Route> inner) {
    return jsonEntity(
        text -> {
          if (text.isBlank()) {
            throw ApiException.malformed("a JSON body is required");
          }
          return inner.apply(parse(type, text));
        });
  }

  private <T> Route bodyOrEmpty(Class<T> type, T empty, Function<T, Route> inner) {
    return jsonEntity(text -> inner.apply(text.isBlank() ? empty : parse(type, text)));
  }

  /** The body as text, refused with 415 unless it is empty or declared JSON. */
  private Route jsonEntity(Function<String, Route> inner) {
    return extractRequestEntity(
        e -> {
          var media = e.getContentType().mediaType();
          boolean json =
              media.mainType().equals("application")
                  && (media.subType().equals("json") || media.subType().endsWith("+json"));
          if (!json && !e.isKnownEmpty()) {
            throw new ApiException(
                Problem.of(
                    415,
                    "unsupported-media-type",
                    "The request body must be JSON",
                    "Content-Type " + media + " is not application/json"));
          }
          return entity(Unmarshaller.entityToString(), inner::apply);
        });
  }

  private <T> T parse(Class<T> type, String text) {
    try {
      T value = mapper.readValue(text, type);
      if (value == null) {
        throw ApiException.malformed("a JSON object is required");
      }
      return value;
    } catch (JsonProcessingException e) {
      throw ApiException.malformed(JsonErrors.describe(e));
    }
  }

  private <T> Marshaller<T, RequestEntity> json() {
    return Jackson.marshaller(mapper);
  }

  static Problem problemOf(Error e) {
    return switch (e.kind()) {
      case INVALID -> Problem.of(422, "invalid-request", "The request is not valid", e.message());
      case NOT_FOUND -> Problem.of(404, "not-found", "Not found", e.message());
      case CONFLICT -> Problem.of(409, "conflict", "Conflict", e.message());
      case UNAVAILABLE -> Problem.of(503, "unavailable", "Unavailable", e.message());
    };
  }

  private Route problem(Problem p) {
    return complete(response(p));
  }

  private HttpResponse response(Problem p) {
    try {
      return HttpResponse.create()
          .withStatus(p.status())
          .withEntity(HttpEntities.create(PROBLEM_JSON, mapper.writeValueAsBytes(p)));
    } catch (JsonProcessingException e) {
      throw new IllegalStateException(e);
    }
  }

  private ExceptionHandler exceptions() {
    return ExceptionHandler.newBuilder()
        .match(ApiException.class, e -> complete(response(e.problem)))
        .match(
            CompletionException.class,
            e -> complete(response(unavailable(e.getCause() == null ? e : e.getCause()))))
        .match(TimeoutException.class, e -> complete(response(unavailable(e))))
        .match(
            Exception.class,
            e -> {
              system.log().error("request failed", e);
              return complete(
                  response(
                      Problem.of(
                          500,
                          "internal",
                          "Internal error",
                          "the request failed inside the server; its log has the details")));
            })
        .build();
  }

  private Problem unavailable(Throwable e) {
    if (e instanceof ApiException a) {
      return a.problem;
    }
    return Problem.of(
        503,
        "unavailable",
        "Unavailable",
        "the scheduler did not answer within "
            + settings.askTimeout().toSeconds()
            + " s; retry later");
  }

  private RejectionHandler rejections() {
    return RejectionHandler.defaultHandler()
        .mapRejectionResponse(
            resp -> {
              if (resp.entity().getContentType().equals(PROBLEM_JSON)) {
                return resp;
              }
              int status = resp.status().intValue();
              String detail =
                  HttpRefusals.detail(
                      status,
                      resp.status().reason(),
                      resp.entity()
                              instanceof org.apache.pekko.http.javadsl.model.HttpEntity.Strict s
                          ? s.getData().utf8String()
                          : "");
              return response(
                      Problem.of(
                          status,
                          status == 404 ? "not-found" : "rejected",
                          resp.status().reason(),
                          detail))
                  .withHeaders(resp.getHeaders());
            });
  }
}
