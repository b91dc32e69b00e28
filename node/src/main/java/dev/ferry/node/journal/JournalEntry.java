package dev.ferry.node.journal;

import com.fasterxml.jackson.annotation.JsonIgnore;
import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;
import dev.ferry.protocol.Manifest;
import dev.ferry.protocol.MigrationOptions;
import dev.ferry.protocol.MigrationPhase;
import dev.ferry.protocol.MigrationResult;

/**
 * One record of a migration's journal: a step that is about to happen or happened, with what a
 * restarted agent needs to finish or undo it. Recovery matches on the record types; each is written
 * with a named type id, so renaming a class never changes the file format. The first record of a
 * migration is {@link Started}; the last of one that ended is {@link Finished} (source) or {@link
 * IncomingEnded} (destination).
 */
@JsonTypeInfo(use = JsonTypeInfo.Id.NAME, property = "type")
@JsonSubTypes({
  @JsonSubTypes.Type(value = JournalEntry.Started.class, name = "started"),
  @JsonSubTypes.Type(value = JournalEntry.PhaseEntered.class, name = "phase"),
  @JsonSubTypes.Type(value = JournalEntry.TargetReady.class, name = "target-ready"),
  @JsonSubTypes.Type(value = JournalEntry.BitmapsAdded.class, name = "bitmaps-added"),
  @JsonSubTypes.Type(value = JournalEntry.MetadataDropping.class, name = "metadata-dropping"),
  @JsonSubTypes.Type(value = JournalEntry.OverlaysCreated.class, name = "overlays-created"),
  @JsonSubTypes.Type(value = JournalEntry.Copied.class, name = "copied"),
  @JsonSubTypes.Type(value = JournalEntry.ColdShutdown.class, name = "cold-shutdown"),
  @JsonSubTypes.Type(value = JournalEntry.ShutOff.class, name = "shut-off"),
  @JsonSubTypes.Type(value = JournalEntry.ColdStartRequested.class, name = "cold-start-requested"),
  @JsonSubTypes.Type(value = JournalEntry.ColdStarted.class, name = "cold-started"),
  @JsonSubTypes.Type(value = JournalEntry.MemoryStarted.class, name = "memory-started"),
  @JsonSubTypes.Type(value = JournalEntry.SwitchedOver.class, name = "switched-over"),
  @JsonSubTypes.Type(value = JournalEntry.FinalSynced.class, name = "final-synced"),
  @JsonSubTypes.Type(value = JournalEntry.Acknowledged.class, name = "acknowledged"),
  @JsonSubTypes.Type(value = JournalEntry.RollingBack.class, name = "rolling-back"),
  @JsonSubTypes.Type(value = JournalEntry.MigratingBack.class, name = "migrating-back"),
  @JsonSubTypes.Type(value = JournalEntry.Finished.class, name = "finished"),
  @JsonSubTypes.Type(value = JournalEntry.IncomingStep.class, name = "incoming"),
  @JsonSubTypes.Type(value = JournalEntry.IncomingEnded.class, name = "incoming-ended"),
})
public sealed interface JournalEntry {

  long atMillis();

  /** Whether the migration ended with this record (nothing is left to recover). */
  @JsonIgnore
  default boolean terminal() {
    return false;
  }

  static long now() {
    return System.currentTimeMillis();
  }

  // ------------------------------------------------------------------ both sides

  /** The manifest (what the destination must prove) and, on the source, the options. */
  record Started(long atMillis, Manifest manifest, MigrationOptions options)
      implements JournalEntry {
    public Started(Manifest manifest, MigrationOptions options) {
      this(now(), manifest, options);
    }
  }

  /** The source entered a phase (for the record and for reading where it stopped). */
  record PhaseEntered(long atMillis, MigrationPhase phase, String detail) implements JournalEntry {
    public PhaseEntered(MigrationPhase phase, String detail) {
      this(now(), phase, detail);
    }
  }

  // ------------------------------------------------------------------ source facts

  /** The destination's target actor (serialized ref) is ready; it can be asked to clean up. */
  record TargetReady(long atMillis, String targetRef, String host) implements JournalEntry {
    public TargetReady(String targetRef, String host) {
      this(now(), targetRef, host);
    }
  }

  /** Persistent dirty bitmaps of this name are being added (written before the act). */
  record BitmapsAdded(long atMillis, String bitmap) implements JournalEntry {
    public BitmapsAdded(String bitmap) {
      this(now(), bitmap);
    }
  }

  /** libvirt's snapshot metadata is being dropped; the manifest holds it. */
  record MetadataDropping(long atMillis) implements JournalEntry {
    public MetadataDropping() {
      this(now());
    }
  }

  /** Overlay strategy: the source's disks are being frozen under temporary overlays. */
  record OverlaysCreated(long atMillis) implements JournalEntry {
    public OverlaysCreated() {
      this(now());
    }
  }

  /** Every disk and the VM directory arrived on the destination. */
  record Copied(long atMillis, String detail) implements JournalEntry {
    public Copied(String detail) {
      this(now(), detail);
    }
  }

  /** Cold strategy: the ACPI power button is being pressed. */
  record ColdShutdown(long atMillis) implements JournalEntry {
    public ColdShutdown() {
      this(now());
    }
  }

  /** Cold strategy: the guest is shut off here. */
  record ShutOff(long atMillis) implements JournalEntry {
    public ShutOff() {
      this(now());
    }
  }

  /** Cold strategy: the destination is being asked to boot the guest. */
  record ColdStartRequested(long atMillis) implements JournalEntry {
    public ColdStartRequested() {
      this(now());
    }
  }

  /** Cold strategy: the guest runs verified on the destination. */
  record ColdStarted(long atMillis) implements JournalEntry {
    public ColdStarted() {
      this(now());
    }
  }

  /** libvirt's memory migration is being started. */
  record MemoryStarted(long atMillis) implements JournalEntry {
    public MemoryStarted() {
      this(now());
    }
  }

  /** The switchover happened: from here the migration is finished, not undone. */
  record SwitchedOver(long atMillis, String why) implements JournalEntry {
    public SwitchedOver(String why) {
      this(now(), why);
    }
  }

  /** Every destination file was made identical in place (suspend-sync). */
  record FinalSynced(long atMillis, String methods) implements JournalEntry {
    public FinalSynced(String methods) {
      this(now(), methods);
    }
  }

  /** The destination runs the verified VM; the result is being given, then the clean-up. */
  record Acknowledged(long atMillis) implements JournalEntry {
    public Acknowledged() {
      this(now());
    }
  }

  record RollingBack(long atMillis, String cause) implements JournalEntry {
    public RollingBack(String cause) {
      this(now(), cause);
    }
  }

  /** The paused VM is being migrated back to the source. */
  record MigratingBack(long atMillis, String cause) implements JournalEntry {
    public MigratingBack(String cause) {
      this(now(), cause);
    }
  }

  /** The source's result: the migration ended. */
  record Finished(long atMillis, MigrationResult result) implements JournalEntry {
    public Finished(MigrationResult result) {
      this(now(), result);
    }

    @Override
    public boolean terminal() {
      return true;
    }
  }

  // ------------------------------------------------------------------ destination

  /** What the destination does or did, in order. */
  enum Incoming {
    PREPARED,
    ARMED,
    PAUSED,
    RESUMED,
    VERIFYING,
    VERIFIED,
    VERIFICATION_FAILED,
    INODE_MISMATCH,
    COLD_STARTING,
    COLD_START_FAILED,
    COPIES_VERIFIED,
    OVERLAYS_CREATED,
    MERGING,
    MERGED,
    MERGE_FAILED,
    MIGRATING_BACK,
    ABORTING
  }

  record IncomingStep(long atMillis, Incoming step, String detail) implements JournalEntry {
    public IncomingStep(Incoming step, String detail) {
      this(now(), step, detail);
    }
  }

  /** How an incoming migration ended on the destination. */
  enum IncomingEnd {
    REFUSED,
    ABORTED,
    ABORT_FAILED,
    /** The VM lives here; the directories are its own. */
    RUNNING,
    MIGRATED_BACK
  }

  record IncomingEnded(long atMillis, IncomingEnd end, String detail) implements JournalEntry {
    public IncomingEnded(IncomingEnd end, String detail) {
      this(now(), end, detail);
    }

    @Override
    public boolean terminal() {
      return true;
    }
  }
}
