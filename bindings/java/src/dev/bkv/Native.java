package dev.bkv;

/**
 * The JNI entry points (bindings/java/jni/bkv_jni.cc), over libbkv's C ABI. Handles are native
 * pointers kept in the public classes' private fields; nothing else sees them.
 */
final class Native {
  static {
    String path = System.getProperty("bkv.jni.library");
    if (path != null) {
      System.load(path);
    } else {
      System.loadLibrary("bkv_jni");
    }
  }

  private Native() {}

  static native String version();

  static native long keyGenerate() throws BkvException;

  static native long keyParse(char[] text) throws BkvException;

  static native char[] keyFormat(long key) throws BkvException;

  static native void keyFree(long key);

  static native long storeOpen(String url) throws BkvException;

  static native long storeCallbacks(String name, StoreCallbacks callbacks) throws BkvException;

  static native void storeFree(long store);

  static native long cancelNew() throws BkvException;

  static native void cancelRequest(long cancel);

  static native void cancelFree(long cancel);

  static native String backup(
      long store, long key, String path, ProgressListener progress, long cancel)
      throws BkvException;

  static native void restore(
      long store, long key, String id, String target, ProgressListener progress, long cancel)
      throws BkvException;

  static native String list(long store, long key) throws BkvException;

  static native long vaultOpen(
      String address,
      String serverPublicKey,
      String accountToken,
      int[] argon2,
      int timeoutMs,
      int maxRetryWaitMs)
      throws BkvException;

  static native void vaultFree(long vault);

  static native void vaultSetToken(long vault, String token) throws BkvException;

  static native void vaultRegister(
      long vault, String account, char[] password, long key, long cancel) throws BkvException;

  static native long vaultRecover(long vault, String account, char[] password, long cancel)
      throws BkvException;

  /** {state, attemptsRemaining, attemptLimit}. */
  static native long[] vaultStatus(long vault, long cancel) throws BkvException;

  static native int vaultChangePassword(
      long vault, String account, char[] oldPassword, char[] newPassword, long cancel)
      throws BkvException;

  /** Reads from the SDK's bytes for one put (see StoreCallbacks.put). */
  static native int readerRead(long reader, byte[] buf, int off, int len) throws BkvException;

  static native long slotSecretRecoveryKey(long key) throws BkvException;

  static native long slotSecretPasskey(byte[] credentialId, byte[] prfOutput)
      throws BkvException;

  static native void slotSecretFree(long secret);

  static native long slotsUnlock(long store, long secret) throws BkvException;

  /** One line per passkey slot: slot id, credential id, salt (hex), rp id. */
  static native String slotsPasskeys(long store) throws BkvException;

  static native byte[] randomSalt() throws BkvException;

  static native byte[] slotsAddPasskey(
      long store, long opened, String rpId, byte[] credentialId, byte[] salt, byte[] prfOutput)
      throws BkvException;

  static native byte[] slotsAddRecoveryKey(long store, long opened, long newKey)
      throws BkvException;

  static native boolean slotsRemove(long store, long opened, byte[] slotId) throws BkvException;

  static native void slotsRotatePasskeySalt(
      long store, long oldOutput, byte[] newSalt, byte[] newOutput) throws BkvException;
}
