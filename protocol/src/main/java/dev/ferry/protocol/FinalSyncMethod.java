package dev.ferry.protocol;

import com.fasterxml.jackson.annotation.JsonProperty;

/** How the suspend-sync flow makes the paused destination's files match the source's. */
public enum FinalSyncMethod {
  /** The bitmap delta for qcow2 v3 images, rsync otherwise. */
  @JsonProperty("auto")
  AUTO,
  /** {@code rsync --inplace --no-whole-file}: reads both whole files inside the paused window. */
  @JsonProperty("rsync")
  RSYNC,
  /** qcow2 metadata plus the clusters a persistent dirty bitmap marks: scales with dirty data. */
  @JsonProperty("bitmap-delta")
  BITMAP_DELTA
}
