package dev.ferry.node.image;

/** qemu-img failed or said something we cannot parse. */
public final class ImageToolException extends RuntimeException {
  public ImageToolException(String message) {
    super(message);
  }

  public ImageToolException(String message, Throwable cause) {
    super(message, cause);
  }
}
