package dev.ferry.node.libvirt;

import dev.ferry.node.validation.DatastorePaths;
import java.io.IOException;
import java.io.StringReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import javax.xml.parsers.ParserConfigurationException;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;
import org.xml.sax.InputSource;
import org.xml.sax.SAXException;

/** Parses libvirt domain and snapshot XML into the typed model. DTDs and entities are refused. */
public final class DomainXml {
  private DomainXml() {}

  public static DomainDefinition parseDomain(String xml) {
    Element root = parse(xml).getDocumentElement();
    if (!"domain".equals(root.getTagName())) {
      throw new IllegalArgumentException("not a domain XML: <" + root.getTagName() + ">");
    }
    return domain(root, xml);
  }

  /**
   * State a domain keeps outside its disks that a migration would have to carry: UEFI variables
   * ({@code <os><nvram>}, which since libvirt 10.9 may also hold internal snapshots) and TPM state
   * ({@code <devices><tpm>}, kept by swtpm). One description per item, empty if none.
   */
  public static List<String> stateOutsideDisks(String xml) {
    Element root = parse(xml).getDocumentElement();
    List<String> found = new ArrayList<>();
    child(root, "os")
        .flatMap(os -> child(os, "nvram"))
        .ifPresent(
            n ->
                found.add(
                    "UEFI variables (NVRAM "
                        + (n.getTextContent().isBlank()
                            ? n.getAttribute("template")
                            : n.getTextContent().trim())
                        + ")"));
    child(root, "devices")
        .ifPresent(
            d -> {
              for (Element tpm : children(d, "tpm")) {
                found.add("a TPM (model " + tpm.getAttribute("model") + ", swtpm state)");
              }
            });
    return found;
  }

  /** OpenNebula's namespace for its domain metadata ({@code <one:vm>}). */
  public static final String OPENNEBULA_NS = "http://opennebula.org/xmlns/libvirt/1.0";

  /**
   * The VM directory OpenNebula wrote into the domain's metadata ({@code
   * <metadata><one:vm><one:system_datastore>}), collapsed; empty for a domain OpenNebula did not
   * deploy. The prefix is whatever the document binds to OpenNebula's namespace.
   */
  public static Optional<String> openNebulaVmDirectory(String xml) {
    Element root = parse(xml).getDocumentElement();
    Optional<Element> metadata = child(root, "metadata");
    if (metadata.isEmpty()) {
      return Optional.empty();
    }
    for (Element vm : children(metadata.get(), null)) {
      String tag = vm.getTagName();
      String prefix = tag.contains(":") ? tag.substring(0, tag.indexOf(':')) : "";
      String ns = vm.getAttribute(prefix.isEmpty() ? "xmlns" : "xmlns:" + prefix);
      if (!OPENNEBULA_NS.equals(ns) || !tag.equals(prefix.isEmpty() ? "vm" : prefix + ":vm")) {
        continue;
      }
      Optional<String> dir =
          child(vm, prefix.isEmpty() ? "system_datastore" : prefix + ":system_datastore")
              .map(e -> e.getTextContent().trim())
              .filter(t -> !t.isEmpty());
      return dir.map(DatastorePaths::collapsed);
    }
    return Optional.empty();
  }

  public static SnapshotDefinition parseSnapshot(String xml) {
    Element root = parse(xml).getDocumentElement();
    if (!"domainsnapshot".equals(root.getTagName())) {
      throw new IllegalArgumentException("not a snapshot XML: <" + root.getTagName() + ">");
    }
    Optional<String> parent = child(root, "parent").flatMap(p -> text(p, "name"));
    return new SnapshotDefinition(
        text(root, "name").orElseThrow(() -> new IllegalArgumentException("snapshot without name")),
        parent,
        text(root, "state").orElse(""),
        text(root, "creationTime").map(Long::parseLong).orElse(0L),
        xml);
  }

  private static DomainDefinition domain(Element root, String xml) {
    List<DiskDefinition> disks = new ArrayList<>();
    Optional<Element> devices = child(root, "devices");
    if (devices.isPresent()) {
      for (Element disk : children(devices.get(), "disk")) {
        disks.add(disk(disk));
      }
    }
    long memoryKiB =
        child(root, "memory")
            .map(m -> toKiB(Long.parseLong(m.getTextContent().trim()), m.getAttribute("unit")))
            .orElse(0L);
    return new DomainDefinition(
        text(root, "name").orElseThrow(() -> new IllegalArgumentException("domain without name")),
        text(root, "uuid").orElse(""),
        root.getAttribute("type"),
        memoryKiB,
        text(root, "vcpu").map(Integer::parseInt).orElse(1),
        disks,
        xml);
  }

  private static DiskDefinition disk(Element disk) {
    Optional<Element> source = child(disk, "source");
    Optional<Element> driver = child(disk, "driver");
    Optional<Element> target = child(disk, "target");
    List<String> backing = new ArrayList<>();
    Optional<Element> store = child(disk, "backingStore");
    while (store.isPresent()) {
      Optional<String> file =
          child(store.get(), "source")
              .map(s -> s.getAttribute("file"))
              .filter(f -> !f.isEmpty())
              .map(DatastorePaths::collapsed);
      if (file.isEmpty()) {
        break;
      }
      backing.add(file.get());
      store = child(store.get(), "backingStore");
    }
    return new DiskDefinition(
        target.map(t -> t.getAttribute("dev")).orElse(""),
        disk.getAttribute("device").isEmpty() ? "disk" : disk.getAttribute("device"),
        disk.getAttribute("type"),
        // compared in one form everywhere: libvirt keeps OpenNebula's "//" as given
        source
            .map(s -> s.getAttribute("file"))
            .filter(f -> !f.isEmpty())
            .map(DatastorePaths::collapsed),
        driver.map(d -> d.getAttribute("type")).filter(t -> !t.isEmpty()),
        child(disk, "readonly").isPresent(),
        child(disk, "shareable").isPresent(),
        target.map(t -> t.getAttribute("bus")).orElse(""),
        backing);
  }

  private static long toKiB(long value, String unit) {
    return switch (unit.isEmpty() ? "KiB" : unit) {
      case "b", "bytes" -> value / 1024;
      case "KB" -> value * 1000 / 1024;
      case "k", "KiB" -> value;
      case "MB" -> value * 1000 * 1000 / 1024;
      case "M", "MiB" -> value * 1024;
      case "GB" -> value * 1000L * 1000 * 1000 / 1024;
      case "G", "GiB" -> value * 1024 * 1024;
      default -> throw new IllegalArgumentException("unknown memory unit " + unit);
    };
  }

  static Document parse(String xml) {
    try {
      DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
      f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
      f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
      f.setExpandEntityReferences(false);
      f.setXIncludeAware(false);
      DocumentBuilder b = f.newDocumentBuilder();
      b.setErrorHandler(null);
      return b.parse(new InputSource(new StringReader(xml)));
    } catch (ParserConfigurationException | SAXException | IOException e) {
      throw new IllegalArgumentException("malformed XML: " + e.getMessage(), e);
    }
  }

  private static Optional<Element> child(Element parent, String name) {
    List<Element> all = children(parent, name);
    return all.isEmpty() ? Optional.empty() : Optional.of(all.get(0));
  }

  private static List<Element> children(Element parent, String name) {
    List<Element> out = new ArrayList<>();
    NodeList nodes = parent.getChildNodes();
    for (int i = 0; i < nodes.getLength(); i++) {
      Node n = nodes.item(i);
      if (n instanceof Element e && (name == null || e.getTagName().equals(name))) {
        out.add(e);
      }
    }
    return out;
  }

  private static Optional<String> text(Element parent, String name) {
    return child(parent, name).map(e -> e.getTextContent().trim());
  }
}
