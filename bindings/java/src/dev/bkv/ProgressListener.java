package dev.bkv;

/**
 * Progress of a backup or restore. Called on an SDK worker thread, never the caller's: keep it
 * short, post to the UI thread, don't call back into the SDK, don't throw.
 */
@FunctionalInterface
public interface ProgressListener {
  /** Bytes done so far, and the expected total (0: unknown). */
  void onProgress(long done, long total);
}
