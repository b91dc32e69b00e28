package dev.ferry.protocol;

import com.fasterxml.jackson.annotation.JsonProperty;

/** How files are copied while the VM runs. Both keep sparse files sparse. */
public enum BulkCopyMethod {
  /** {@code tar -S} piped through the agent (throttled, counted) into {@code ssh host tar -x}. */
  @JsonProperty("tar")
  TAR,
  /** {@code rsync --sparse} with {@code --bwlimit}. */
  @JsonProperty("rsync")
  RSYNC
}
