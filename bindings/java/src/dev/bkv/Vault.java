package dev.bkv;

/**
 * The backup key stored behind a password (docs/protocol.md): the vault never sees either, and
 * counts wrong passwords; after the limit the key is destroyed. Every call blocks for network
 * round trips (and Argon2id: about a second on a phone): never call it on the UI thread. A Vault
 * may be used from several threads at once; close() must not race a call.
 */
public final class Vault extends Handle {
  /** What {@link #status} reports. */
  public enum State {
    NONE,
    ACTIVE,
    LOCKED
  }

  /** The account's record: its state and attempts. */
  public record Status(State state, int attemptsRemaining, int attemptLimit) {}

  /** Connection settings; address and serverPublicKey are required. */
  public static final class Options {
    public String address;
    /** The vault's OPAQUE public key, pinned: 64 hex digits. */
    public String serverPublicKey;
    /** Bearer token from the app's messaging service. */
    public String accountToken;
    /** Argon2id for new registrations; 0: the defaults (t=3, m=65536 KiB, p=4). */
    public int argon2Iterations;

    public int argon2MemoryKib;
    public int argon2Parallelism;
    /** Per RPC; 0: 30 s. */
    public int timeoutMs;
    /** Total time to wait out refusals the vault marks as not counted; 0: never wait. */
    public int maxRetryWaitMs;
  }

  private Vault(long ptr) {
    super(ptr);
  }

  /** Checks the options; does not contact the vault. Plaintext only to loopback. */
  public static Vault open(Options o) throws BkvException {
    int[] argon2 = {o.argon2Iterations, o.argon2MemoryKib, o.argon2Parallelism};
    return new Vault(
        Native.vaultOpen(
            o.address, o.serverPublicKey, o.accountToken, argon2, o.timeoutMs, o.maxRetryWaitMs));
  }

  /** Replaces the account token (e.g. after VAULT_UNAUTHENTICATED); any thread. */
  public void setToken(String token) throws BkvException {
    Native.vaultSetToken(ptr(), token);
  }

  /** Stores {@code key} behind {@code password}. The binding wipes its copies of the password. */
  public void register(String account, char[] password, BackupKey key, Cancel cancel)
      throws BkvException {
    Native.vaultRegister(ptr(), account, password, key.ptr(), Cancel.ptrOf(cancel));
  }

  /**
   * Recovers the key. A wrong password spends one attempt ({@link BkvException.WrongPassword});
   * the last one gives {@link BkvException.Locked}. Never retry a wrong password automatically.
   */
  public BackupKey recover(String account, char[] password, Cancel cancel) throws BkvException {
    return BackupKey.adopt(Native.vaultRecover(ptr(), account, password, Cancel.ptrOf(cancel)));
  }

  /** Spends no attempt. */
  public Status status(Cancel cancel) throws BkvException {
    long[] s = Native.vaultStatus(ptr(), Cancel.ptrOf(cancel));
    return new Status(State.values()[(int) s[0]], (int) s[1], (int) s[2]);
  }

  /** Proves the old password (one attempt), then stores the same key behind the new one. */
  public int changePassword(String account, char[] oldPassword, char[] newPassword, Cancel cancel)
      throws BkvException {
    return Native.vaultChangePassword(
        ptr(), account, oldPassword, newPassword, Cancel.ptrOf(cancel));
  }

  /** The libbkv version ("MAJOR.MINOR.PATCH"). */
  public static String libraryVersion() {
    return Native.version();
  }

  @Override
  void free(long ptr) {
    Native.vaultFree(ptr);
  }
}
