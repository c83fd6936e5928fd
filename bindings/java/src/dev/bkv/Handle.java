package dev.bkv;

/** A native handle freed once by close(); using it afterwards throws IllegalStateException. */
abstract class Handle implements AutoCloseable {
  private long ptr;

  Handle(long ptr) {
    this.ptr = ptr;
  }

  final synchronized long ptr() {
    if (ptr == 0) throw new IllegalStateException(getClass().getSimpleName() + " is closed");
    return ptr;
  }

  abstract void free(long ptr);

  @Override
  public final synchronized void close() {
    if (ptr != 0) free(ptr);
    ptr = 0;
  }
}
