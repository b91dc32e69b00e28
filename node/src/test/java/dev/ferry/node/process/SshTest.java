package dev.ferry.node.process;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class SshTest {
  private final Ssh ssh = new Ssh("ssh", List.of("-o", "BatchMode=yes"), "");

  @Test
  void buildsArgvWithOneQuotedRemoteCommand() {
    assertEquals(
        List.of("ssh", "-o", "BatchMode=yes", "host2", "--", "tar -C /var/lib/x -xSf -"),
        ssh.command("host2", List.of("tar", "-C", "/var/lib/x", "-xSf", "-")));
  }

  /** The remote shell must see exactly the argv we meant, whatever the characters. */
  @Test
  void quotingSurvivesARealShell() {
    List<String> args =
        List.of("a b", "it's", "$(id)", "`id`", "; rm -rf /", "\"q\"", "*", "", "new\nline", "~");
    List<String> argv = new ArrayList<>(List.of("printf", "<%s>\\n"));
    argv.addAll(args);
    List<String> out = new ArrayList<>();
    try (LocalProcessRunner runner = new LocalProcessRunner()) {
      runner.run(ProcessSpec.of("sh", "-c", Ssh.quote(argv)), out::add).orThrow();
    }
    List<String> expected = new ArrayList<>();
    for (String a : args) {
      expected.addAll(List.of(("<" + a + ">").split("\n")));
    }
    assertEquals(expected, out);
  }

  @Test
  void userAndRsyncForms() {
    Ssh withUser = new Ssh("/usr/bin/ssh", List.of("-p", "2222"), "oneadmin");
    assertEquals("oneadmin@host3:/var/lib/one", withUser.rsyncTarget("host3", "/var/lib/one"));
    assertEquals("/usr/bin/ssh -p 2222", withUser.rsyncShell());
    assertEquals("oneadmin@host3", withUser.command("host3", List.of("true")).get(3));
  }
}
