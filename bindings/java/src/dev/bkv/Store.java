package dev.bkv;

import java.io.InputStream;

/** Where encrypted backups live. One call at a time per Store; close() frees it. */
public final class Store extends Handle {
  private Store(long ptr) {
    super(ptr);
  }

  /**
   * file:///dir, s3://bucket/prefix?endpoint=...&region=..., webdav(s)://host:port/path;
   * credentials from the environment, never the URL.
   */
  public static Store open(String url) throws BkvException {
    return new Store(Native.storeOpen(url));
  }

  /** A store whose operations are the app's; {@code name} appears in error messages. */
  public static Store fromCallbacks(String name, StoreCallbacks callbacks) throws BkvException {
    return new Store(Native.storeCallbacks(name, callbacks));
  }

  @Override
  void free(long ptr) {
    Native.storeFree(ptr);
  }

  /** The bytes of one put, pulled from the SDK; valid only during that put. */
  static final class PutStream extends InputStream {
    private final long reader;

    PutStream(long reader) {
      this.reader = reader;
    }

    @Override
    public int read() throws java.io.IOException {
      byte[] one = new byte[1];
      int n = read(one, 0, 1);
      return n <= 0 ? -1 : one[0] & 0xff;
    }

    @Override
    public int read(byte[] b, int off, int len) throws java.io.IOException {
      if (len == 0) return 0;
      try {
        int n = Native.readerRead(reader, b, off, len);
        return n == 0 ? -1 : n;
      } catch (BkvException e) {
        throw new SdkReadException(e);
      }
    }
  }

  /** The SDK's own failure while an app's put reads its bytes (e.g. cancelled). */
  static final class SdkReadException extends java.io.IOException {
    SdkReadException(BkvException cause) {
      super(cause.getMessage(), cause);
    }
  }
}
