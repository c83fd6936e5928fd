package dev.bkv;

import java.util.Arrays;
import java.util.List;

/**
 * Encrypted backups of a file or directory in a {@link Store}, under a {@link BackupKey}. Calls
 * block (run them off the UI thread); {@code progress} and {@code cancel} may be null.
 */
public final class Backups {
  private Backups() {}

  /** Backs up {@code path}; returns the new backup's id (32 hex digits). */
  public static String backup(
      Store store, BackupKey key, String path, ProgressListener progress, Cancel cancel)
      throws BkvException {
    return Native.backup(store.ptr(), key.ptr(), path, progress, Cancel.ptrOf(cancel));
  }

  /**
   * Restores backup {@code id} (a unique prefix; null: the newest) to {@code target}, which must
   * not exist; nothing is left there on failure.
   */
  public static void restore(
      Store store,
      BackupKey key,
      String id,
      String target,
      ProgressListener progress,
      Cancel cancel)
      throws BkvException {
    Native.restore(store.ptr(), key.ptr(), id, target, progress, Cancel.ptrOf(cancel));
  }

  /** Backup ids, oldest first. */
  public static List<String> list(Store store, BackupKey key) throws BkvException {
    String ids = Native.list(store.ptr(), key.ptr());
    return ids.isEmpty() ? List.of() : Arrays.asList(ids.split("\n"));
  }
}
