package dev.ferry.api.deploy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.ferry.node.management.ManagementSettings;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The manifests in k8s/ against the code: every file parses, every file a kustomization names
 * exists, selectors match labels, ports and probe paths are the ones the nodes serve, the config
 * files the pods load are valid for the typed settings and use only keys that reference.conf knows,
 * and every FERRY_ variable a pod sets is one the configuration reads.
 */
class KubernetesManifestsTest {
  private static final Path K8S = Path.of("..", "k8s").toAbsolutePath().normalize();
  private static final Path BASE = K8S.resolve("base");
  private static final ObjectMapper yaml = new ObjectMapper(new YAMLFactory());

  /** The probe paths ManagementServer serves (ManagementServer's own test calls them). */
  private static final Map<String, String> PROBES =
      Map.of("livenessProbe", "/health/live", "readinessProbe", "/health/ready");

  private static final Pattern CONFIG_FILE = Pattern.compile("-Dconfig\\.file=/etc/ferry/(\\S+)");
  private static final Config TOKEN =
      ConfigFactory.parseString("ferry.api.auth.token = \"k8s-test-token-0123456789\"");

  private static final Map<Path, List<JsonNode>> docs = new HashMap<>();

  @BeforeAll
  static void parseEverything() throws IOException {
    try (Stream<Path> files = Files.walk(K8S)) {
      for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).toList()) {
        List<JsonNode> list = new ArrayList<>();
        try (MappingIterator<JsonNode> it = yaml.readerFor(JsonNode.class).readValues(f.toFile())) {
          while (it.hasNext()) {
            list.add(it.next());
          }
        }
        docs.put(f, list);
      }
    }
  }

  private static List<JsonNode> baseObjects() {
    List<JsonNode> out = new ArrayList<>();
    docs.forEach(
        (f, list) -> {
          if (f.getParent().equals(BASE) && !f.endsWith("kustomization.yaml")) {
            out.addAll(list);
          }
        });
    return out;
  }

  private static List<JsonNode> ofKind(String kind) {
    return baseObjects().stream().filter(d -> kind.equals(d.path("kind").asText())).toList();
  }

  private static List<JsonNode> workloads() {
    List<JsonNode> w = new ArrayList<>(ofKind("DaemonSet"));
    w.addAll(ofKind("Deployment"));
    return w;
  }

  private static Map<String, String> map(JsonNode n) {
    Map<String, String> m = new HashMap<>();
    n.properties().forEach(e -> m.put(e.getKey(), e.getValue().asText()));
    return m;
  }

  private static boolean selects(Map<String, String> selector, Map<String, String> labels) {
    return !selector.isEmpty() && labels.entrySet().containsAll(selector.entrySet());
  }

  @Test
  void everyKustomizationNamesFilesThatExist() {
    List<Path> kustomizations =
        docs.keySet().stream().filter(p -> p.endsWith("kustomization.yaml")).toList();
    assertTrue(kustomizations.size() >= 3, "base and two overlays: " + kustomizations);
    for (Path k : kustomizations) {
      JsonNode kz = docs.get(k).get(0);
      List<String> named = new ArrayList<>();
      kz.path("resources").forEach(r -> named.add(r.asText()));
      kz.path("patches").forEach(p -> named.add(p.path("path").asText("")));
      kz.path("configMapGenerator")
          .forEach(g -> g.path("files").forEach(f -> named.add(f.asText())));
      for (String n : named) {
        if (!n.isEmpty()) {
          assertTrue(Files.exists(k.getParent().resolve(n)), k + " names a missing " + n);
        }
      }
    }
    assertTrue(
        docs.keySet().stream()
            .filter(p -> p.getParent().equals(BASE) && !p.endsWith("kustomization.yaml"))
            .allMatch(
                p ->
                    docs.get(BASE.resolve("kustomization.yaml"))
                        .get(0)
                        .path("resources")
                        .toString()
                        .contains(p.getFileName().toString())),
        "every manifest in base/ is a resource of its kustomization");
  }

  @Test
  void selectorsMatchTheLabelsOfAWorkload() {
    assertEquals(2, workloads().size(), "the agent DaemonSet and the control Deployment");
    List<Map<String, String>> templates = new ArrayList<>();
    for (JsonNode w : workloads()) {
      Map<String, String> labels = map(w.at("/spec/template/metadata/labels"));
      assertTrue(
          selects(map(w.at("/spec/selector/matchLabels")), labels),
          w.at("/metadata/name") + ": its selector matches its pods");
      templates.add(labels);
    }
    for (JsonNode s : ofKind("Service")) {
      Map<String, String> sel = map(s.at("/spec/selector"));
      assertTrue(templates.stream().anyMatch(t -> selects(sel, t)), "service " + s.at("/metadata"));
    }
    for (JsonNode p : ofKind("PodDisruptionBudget")) {
      Map<String, String> sel = map(p.at("/spec/selector/matchLabels"));
      assertTrue(templates.stream().anyMatch(t -> selects(sel, t)), "PDB " + p.at("/metadata"));
    }
  }

  /** The configuration a workload's pods run with: its -Dconfig.file, as the node loads it. */
  private static Config podConfig(JsonNode workload) {
    for (JsonNode a : workload.at("/spec/template/spec/containers/0/args")) {
      Matcher m = CONFIG_FILE.matcher(a.asText());
      if (m.matches()) {
        return DeployConfig.loadChecked(BASE.resolve(m.group(1)), TOKEN);
      }
    }
    throw new AssertionError("no -Dconfig.file in " + workload.at("/metadata/name"));
  }

  @Test
  void portsAndProbesAreTheOnesTheNodesServe() {
    Map<String, Integer> expected = new HashMap<>();
    for (JsonNode w : workloads()) {
      Config pod = podConfig(w);
      expected.put("management", ManagementSettings.from(pod).port());
      expected.put("api", pod.getInt("ferry.api.port"));
      expected.put("remoting", pod.getInt("pekko.remote.artery.canonical.port"));
      expected.put("bootstrap", pod.getInt("pekko.management.http.port"));
      JsonNode c = w.at("/spec/template/spec/containers/0");
      Map<String, Integer> ports = new HashMap<>();
      c.path("ports")
          .forEach(p -> ports.put(p.path("name").asText(), p.path("containerPort").asInt()));
      assertEquals(expected, ports, w.at("/metadata/name").asText());
      PROBES.forEach(
          (probe, path) -> {
            assertEquals(path, c.at("/" + probe + "/httpGet/path").asText(), probe);
            assertEquals("management", c.at("/" + probe + "/httpGet/port").asText(), probe);
          });
      assertFalse(c.at("/resources/requests/memory").isMissingNode(), "memory request");
      assertFalse(c.at("/resources/requests/cpu").isMissingNode(), "cpu request");
      assertFalse(c.at("/resources/limits/memory").isMissingNode(), "memory limit");
    }
    for (JsonNode s : ofKind("Service")) {
      for (JsonNode p : s.at("/spec/ports")) {
        assertEquals(
            expected.get(p.path("targetPort").asText()).intValue(),
            p.path("port").asInt(),
            "service port " + p);
      }
    }
  }

  /**
   * Every config file a pod loads resolves, satisfies the typed settings, and sets only keys that
   * reference.conf (Ferry's and the libraries') defines: a typo would otherwise be ignored.
   */
  @Test
  void theConfigFilesThePodsLoadAreValid() throws Exception {
    Set<String> loaded = new HashSet<>();
    for (JsonNode w : workloads()) {
      JsonNode c = w.at("/spec/template/spec/containers/0");
      List<String> args = new ArrayList<>();
      c.path("args").forEach(a -> args.add(a.asText()));
      for (String a : args) {
        Matcher m = CONFIG_FILE.matcher(a);
        if (m.matches()) {
          loaded.add(m.group(1));
        }
      }
      assertTrue(args.contains("-Dlogback.configurationFile=logback-json.xml"), args.toString());
      assertNotNull(
          getClass().getClassLoader().getResource("logback-json.xml"), "shipped in the jar");
      String main = args.get(args.size() - 1);
      Class.forName(main);
      boolean mountsConfig = false;
      for (JsonNode v : c.path("volumeMounts")) {
        mountsConfig |= v.path("mountPath").asText().equals("/etc/ferry");
      }
      assertTrue(mountsConfig, "the ConfigMap is mounted at /etc/ferry");
    }
    assertEquals(Set.of("agent.conf", "control.conf"), loaded);
    Set<String> tlsDirs = new HashSet<>();
    for (String file : loaded) {
      Config full = DeployConfig.loadChecked(BASE.resolve(file), TOKEN);
      assertEquals("kubernetes-api", full.getString("ferry.cluster.formation"), file);
      assertEquals("tls-tcp", full.getString("pekko.remote.artery.transport"), file);
      tlsDirs.add(
          full.getString("pekko.remote.artery.ssl.rotating-keys-engine.secret-mount-point"));
    }
    assertEquals(1, tlsDirs.size(), "one place for the TLS files: " + tlsDirs);
    for (JsonNode w : workloads()) {
      boolean mountsTls = false;
      for (JsonNode v : w.at("/spec/template/spec/containers/0/volumeMounts")) {
        mountsTls |= tlsDirs.contains(v.path("mountPath").asText());
      }
      assertTrue(mountsTls, w.at("/metadata/name") + " mounts the TLS files at " + tlsDirs);
    }
    Config agentsOnly =
        ConfigFactory.parseFile(K8S.resolve("overlays/agents-only/formation.conf").toFile());
    assertEquals("seed-nodes", agentsOnly.getString("ferry.cluster.formation"));
    assertFalse(agentsOnly.getStringList("pekko.cluster.seed-nodes").isEmpty());
  }

  /**
   * The bootstrap finds every Ferry pod through the Kubernetes API: its label selector matches the
   * pods of both workloads, and their account may list pods (and nothing else) with a token that is
   * mounted.
   */
  @Test
  void theBootstrapCanListThePodsItLooksFor() {
    for (JsonNode w : workloads()) {
      Config pod = podConfig(w);
      assertEquals(
          "kubernetes-api",
          pod.getString(
              "pekko.management.cluster.bootstrap.contact-point-discovery.discovery-method"));
      String[] selector =
          pod.getString("pekko.discovery.kubernetes-api.pod-label-selector")
              .formatted(
                  pod.getString(
                      "pekko.management.cluster.bootstrap.contact-point-discovery.service-name"))
              .split("=", 2);
      assertEquals(
          selector[1],
          map(w.at("/spec/template/metadata/labels")).get(selector[0]),
          w.at("/metadata/name") + "'s pods carry the label the bootstrap selects");
      assertEquals("ferry", w.at("/spec/template/spec/serviceAccountName").asText());
      assertTrue(w.at("/spec/template/spec/automountServiceAccountToken").asBoolean());
    }
    JsonNode role = ofKind("Role").get(0);
    assertEquals(1, role.at("/rules").size(), "one rule: " + role);
    assertEquals("[\"pods\"]", role.at("/rules/0/resources").toString());
    assertEquals("[\"get\",\"watch\",\"list\"]", role.at("/rules/0/verbs").toString());
    JsonNode binding = ofKind("RoleBinding").get(0);
    assertEquals(role.at("/metadata/name"), binding.at("/roleRef/name"));
    assertEquals("ferry", binding.at("/subjects/0/name").asText());
    assertEquals("ServiceAccount", binding.at("/subjects/0/kind").asText());
  }

  /** A FERRY_ variable the configuration never reads would be a setting silently lost. */
  @Test
  void everyFerryVariableAPodSetsIsRead() throws IOException {
    StringBuilder readers = new StringBuilder();
    for (String conf :
        List.of(
            "node/src/main/resources/reference.conf",
            "http-api/src/main/resources/reference.conf")) {
      readers.append(Files.readString(K8S.getParent().resolve(conf)));
    }
    try (Stream<Path> files = Files.list(BASE)) {
      for (Path f : files.filter(p -> p.toString().endsWith(".conf")).toList()) {
        readers.append(Files.readString(f));
      }
    }
    String read = readers.toString();
    int checked = 0;
    for (JsonNode w : workloads()) {
      for (JsonNode env : w.at("/spec/template/spec/containers/0/env")) {
        String name = env.path("name").asText();
        if (name.startsWith("FERRY_")) {
          checked++;
          assertTrue(read.contains("${?" + name + "}"), name + " is read by the configuration");
        }
      }
    }
    assertTrue(checked >= 8, "the pods set the configuration through FERRY_ variables");
  }
}
