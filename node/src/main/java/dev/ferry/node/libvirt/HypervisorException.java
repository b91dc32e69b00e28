package dev.ferry.node.libvirt;

/** A libvirt call failed; {@link #code()} is libvirt's error number name when known. */
public final class HypervisorException extends RuntimeException {
  private final String code;

  public HypervisorException(String code, String message, Throwable cause) {
    super(message, cause);
    this.code = code;
  }

  public String code() {
    return code;
  }

  /** The domain does not exist (VIR_ERR_NO_DOMAIN). */
  public boolean noDomain() {
    return "VIR_ERR_NO_DOMAIN".equals(code);
  }
}
