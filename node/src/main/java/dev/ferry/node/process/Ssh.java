package dev.ferry.node.process;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Builds argv for running a command on another host over ssh.
 *
 * <p>ssh hands the remote command to the remote user's shell as one string, so an argv list is not
 * enough on its own: every remote argument is single-quoted here. Inputs are also validated against
 * strict patterns before they get this far (see {@code dev.ferry.node.validation}), so quoting is
 * the second line of defence, not the only one.
 *
 * @param program the ssh binary
 * @param options options placed before the destination (e.g. {@code -o BatchMode=yes})
 * @param user remote user, or empty for the configured default
 */
public record Ssh(String program, List<String> options, String user) {
  private static final Pattern SAFE = Pattern.compile("[A-Za-z0-9_./:=,@%+-]+");

  public Ssh {
    options = List.copyOf(options);
  }

  /** argv that runs {@code remoteArgv} on {@code host}. */
  public List<String> command(String host, List<String> remoteArgv) {
    List<String> argv = new ArrayList<>();
    argv.add(program);
    argv.addAll(options);
    argv.add(user.isEmpty() ? host : user + "@" + host);
    argv.add("--");
    argv.add(quote(remoteArgv));
    return argv;
  }

  /** The destination as rsync wants it: {@code [user@]host:path}. */
  public String rsyncTarget(String host, String path) {
    return (user.isEmpty() ? host : user + "@" + host) + ":" + path;
  }

  /** The {@code -e} value for rsync: this ssh with its options. */
  public String rsyncShell() {
    List<String> parts = new ArrayList<>();
    parts.add(program);
    parts.addAll(options);
    return quote(parts);
  }

  /** Joins arguments into one shell word each, quoting whatever is not plainly safe. */
  public static String quote(List<String> args) {
    StringBuilder sb = new StringBuilder();
    for (String arg : args) {
      if (sb.length() > 0) {
        sb.append(' ');
      }
      if (!arg.isEmpty() && SAFE.matcher(arg).matches()) {
        sb.append(arg);
      } else {
        sb.append('\'').append(arg.replace("'", "'\"'\"'")).append('\'');
      }
    }
    return sb.toString();
  }
}
