package dev.ferry.node.migration;

import dev.ferry.node.host.HostFiles;
import dev.ferry.node.host.OpenFiles;
import dev.ferry.node.image.ImageTool;
import dev.ferry.node.journal.MigrationJournal;
import dev.ferry.node.libvirt.Hypervisor;
import dev.ferry.node.libvirt.PeerHypervisors;
import dev.ferry.node.process.ProcessRunner;
import dev.ferry.node.settings.NodeSettings;
import dev.ferry.node.validation.DatastorePaths;
import java.util.concurrent.Executor;

/** What a migration actor works with on its host: the ports, the journal, the settings. */
public record HostPorts(
    Hypervisor hypervisor,
    ImageTool images,
    ProcessRunner runner,
    DatastorePaths datastores,
    OpenFiles openFiles,
    MigrationJournal journal,
    NodeSettings settings,
    Executor blocking,
    HostFiles files,
    PeerHypervisors peers) {

  /** The same ports acting on another host's libvirt (a peer whose agent stopped). */
  public HostPorts on(Hypervisor peer) {
    return new HostPorts(
        peer, images, runner, datastores, openFiles, journal, settings, blocking, files, peers);
  }

  public DiskUsage usage() {
    return new DiskUsage(runner, settings.tools().commandTimeout());
  }
}
