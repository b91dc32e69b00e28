package dev.ferry.node.validation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ValidationTest {

  @ParameterizedTest
  @ValueSource(strings = {"one-42", "vm1", "tbvm", "a.b_c-d", "X"})
  void goodVmNames(String name) {
    assertEquals(name, Names.vmName(name));
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "",
        "-rf",
        "../etc",
        "vm;reboot",
        "vm$(id)",
        "vm`id`",
        "vm name",
        "vm\nx",
        "vm/x",
        "vm|x",
        ".hidden",
        "a123456789012345678901234567890123456789012345678901234567890123456789"
      })
  void badVmNames(String name) {
    InvalidInputException e = assertThrows(InvalidInputException.class, () -> Names.vmName(name));
    assertEquals("vm", e.field());
  }

  @ParameterizedTest
  @ValueSource(strings = {"host1", "kvm-07.dc1.example.org", "10.79.0.11"})
  void goodHosts(String host) {
    assertEquals(host, Names.hostName(host));
  }

  @ParameterizedTest
  @ValueSource(strings = {"-oProxyCommand=x", "host;id", "host name", "host_1", "a..b", "h:22"})
  void badHosts(String host) {
    assertThrows(InvalidInputException.class, () -> Names.hostName(host));
  }

  @Test
  void errorsEscapeControlCharacters() {
    InvalidInputException e =
        assertThrows(InvalidInputException.class, () -> Names.vmName("a\u001b[31mred"));
    assertTrue(e.getMessage().contains("\\x1b"), e.getMessage());
  }

  @Test
  void pathsAreConfinedToTheDatastores(@TempDir Path tmp) throws Exception {
    Path root = Files.createDirectories(tmp.resolve("datastores/0"));
    Files.createDirectories(root.resolve("vm1"));
    Files.writeString(root.resolve("vm1/disk.0"), "x");
    Path outside = Files.createDirectories(tmp.resolve("outside"));
    Files.createSymbolicLink(root.resolve("vm1/escape"), outside);
    DatastorePaths paths = new DatastorePaths(List.of(root));

    assertEquals(root.resolve("vm1/disk.0"), paths.confine("disk", root + "/vm1/disk.0"));
    assertEquals(root.resolve("vm2/disk.0"), paths.confine("disk", root + "/vm2/disk.0"));
    // OpenNebula's default location has a double slash, and libvirt keeps it
    String doubled = tmp + "//datastores/0//vm1/disk.0";
    assertEquals(root.resolve("vm1/disk.0"), paths.confine("disk", doubled));
    assertEquals(root + "/vm1/disk.0", DatastorePaths.collapsed(doubled));

    for (String bad :
        List.of(
            "vm1/disk.0",
            root + "/../outside/x",
            root + "/vm1/./disk.0",
            root + "//vm1/../../x",
            root + "/vm1/disk.0/",
            root + "/vm1/disk.0;id",
            root + "/vm1/disk 0",
            root.toString(),
            tmp.resolve("outside/x").toString(),
            root + "/vm1/escape/disk.0")) {
      assertThrows(InvalidInputException.class, () -> paths.confine("disk", bad), bad);
    }
  }
}
