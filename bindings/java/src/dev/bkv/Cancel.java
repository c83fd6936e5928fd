package dev.bkv;

/**
 * Cancels the calls it is passed to, from any thread: they throw {@link BkvException.Cancelled}
 * at their next safe point, leaving stores and the vault consistent and spending no attempt.
 * Once cancelled it stays cancelled; use a new one per operation. close() must not race a call
 * that still uses it.
 */
public final class Cancel extends Handle {
  public Cancel() throws BkvException {
    super(Native.cancelNew());
  }

  /** Any thread; does not block. */
  public void cancel() {
    Native.cancelRequest(ptr());
  }

  static long ptrOf(Cancel c) {
    return c == null ? 0 : c.ptr();
  }

  @Override
  void free(long ptr) {
    Native.cancelFree(ptr);
  }
}
