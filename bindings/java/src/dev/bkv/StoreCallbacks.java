package dev.bkv;

import java.io.IOException;
import java.io.InputStream;
import java.util.List;

/**
 * A store the app implements (Google Drive, iCloud, ... through the platform SDK): a flat
 * namespace of objects named [A-Za-z0-9._-]{1,200}. Methods run on an SDK thread (the call's or a
 * worker), one at a time per Store. Throw {@link BkvException} with a {@link Status} to report
 * one (NOT_FOUND, UNAVAILABLE, CANCELLED, ...); an IOException counts as UNAVAILABLE, anything
 * else as INTERNAL. Messages must not contain secrets.
 */
public interface StoreCallbacks {
  /** An object and its size in bytes. */
  record StoredObject(String name, long size) {}

  /**
   * Stores {@code name} with every byte of {@code data}. ATOMIC: readers see the old object or the
   * complete new one, never a part, even if the upload fails or the app dies (upload under a
   * temporary name and rename, or use the platform's atomic upload). Replaces an existing object.
   * If reading {@code data} throws, let it propagate.
   */
  void put(String name, InputStream data) throws BkvException, IOException;

  /**
   * Fills {@code buffer} from {@code offset} of {@code name}; returns the bytes filled, fewer than
   * buffer.length only at the end of the object. NOT_FOUND for a missing object.
   */
  int get(String name, long offset, byte[] buffer) throws BkvException, IOException;

  List<StoredObject> list() throws BkvException, IOException;

  /** Deletes {@code name}; fine if it does not exist. */
  void remove(String name) throws BkvException, IOException;

  /** The size of {@code name}, or NOT_FOUND. */
  long size(String name) throws BkvException, IOException;
}
