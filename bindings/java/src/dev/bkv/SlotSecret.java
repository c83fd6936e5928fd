package dev.bkv;

/**
 * What the user holds for one key slot of a set: its 64-digit recovery key, or a passkey's PRF
 * output. The app runs the platform's WebAuthn ceremony with the {@code prf} extension (Android
 * Credential Manager, a browser) and hands over the credential's raw id and the 32-byte output;
 * the binding copies them into wiped native memory (wipe your byte[] afterwards). close() frees
 * it. Not thread-safe.
 */
public final class SlotSecret extends Handle {
  private SlotSecret(long ptr) {
    super(ptr);
  }

  public static SlotSecret recoveryKey(BackupKey key) throws BkvException {
    return new SlotSecret(Native.slotSecretRecoveryKey(key.ptr()));
  }

  /** {@code prfOutput}: results.first for the salt its slot lists ({@link Slots#passkeys}). */
  public static SlotSecret passkey(byte[] credentialId, byte[] prfOutput) throws BkvException {
    return new SlotSecret(Native.slotSecretPasskey(credentialId, prfOutput));
  }

  @Override
  void free(long ptr) {
    Native.slotSecretFree(ptr);
  }
}
