package dev.bkv;

/**
 * A failed SDK call: {@link #status()} is the C ABI's bkv_status, and the subclasses name the
 * ones an app acts on differently. Messages never contain secrets.
 */
public class BkvException extends Exception {
  /** What a failed vault call did to the attempt counter. */
  public enum Attempt {
    NOT_SPENT,
    SPENT,
    /** The request may have reached the vault; {@link Vault#status} tells. */
    UNKNOWN
  }

  private final Status status;
  private final Attempt attempt;
  private final boolean retrySafe;

  BkvException(Status status, String message, Attempt attempt, boolean retrySafe) {
    super(status + ": " + message);
    this.status = status;
    this.attempt = attempt;
    this.retrySafe = retrySafe;
  }

  /** Thrown by an app's {@link StoreCallbacks} to report a specific status. */
  public BkvException(Status status, String message) {
    this(status, message, Attempt.NOT_SPENT, false);
  }

  public Status status() {
    return status;
  }

  /** For vault calls: whether the failed call spent an attempt. */
  public Attempt attempt() {
    return attempt;
  }

  /** For vault calls: repeating the call can spend nothing. */
  public boolean retrySafe() {
    return retrySafe;
  }

  /** Wrong password: one attempt spent; {@link #attemptsRemaining()} left. */
  public static final class WrongPassword extends BkvException {
    private final int attemptsRemaining;

    WrongPassword(String message, Attempt attempt, int attemptsRemaining) {
      super(Status.VAULT_INVALID_PASSWORD, message, attempt, false);
      this.attemptsRemaining = attemptsRemaining;
    }

    public int attemptsRemaining() {
      return attemptsRemaining;
    }
  }

  /** No attempts left: the key is destroyed for good. */
  public static final class Locked extends BkvException {
    Locked(String message, Attempt attempt) {
      super(Status.VAULT_LOCKED, message, attempt, false);
    }
  }

  /** Too many calls: repeat after {@link #retryAfterMs()}. */
  public static final class RateLimited extends BkvException {
    private final long retryAfterMs;

    RateLimited(String message, Attempt attempt, boolean retrySafe, long retryAfterMs) {
      super(Status.VAULT_RATE_LIMITED, message, attempt, retrySafe);
      this.retryAfterMs = retryAfterMs;
    }

    public long retryAfterMs() {
      return retryAfterMs;
    }
  }

  /** The app cancelled the call ({@link Cancel#cancel()}); nothing was damaged or spent. */
  public static final class Cancelled extends BkvException {
    Cancelled(String message) {
      super(Status.CANCELLED, message, Attempt.NOT_SPENT, true);
    }
  }

  /** Network, store or vault trouble: retry later, with backoff. */
  public static final class Unavailable extends BkvException {
    Unavailable(String message, Attempt attempt, boolean retrySafe) {
      super(Status.UNAVAILABLE, message, attempt, retrySafe);
    }
  }

  /** The key does not open this backup or repository. */
  public static final class WrongKey extends BkvException {
    WrongKey(String message) {
      super(Status.WRONG_KEY, message, Attempt.NOT_SPENT, false);
    }
  }

  /** The backup or repository was truncated, modified or rolled back. */
  public static final class Corrupted extends BkvException {
    Corrupted(String message) {
      super(Status.CORRUPTED, message, Attempt.NOT_SPENT, false);
    }
  }

  /** No such backup, object, file, or (vault) no key registered. */
  public static final class NotFound extends BkvException {
    NotFound(Status status, String message) {
      super(status, message, Attempt.NOT_SPENT, false);
    }
  }

  /** The one place a native status becomes an exception (called from JNI). */
  static BkvException fromNative(
      int code,
      String message,
      int attemptsRemaining,
      long retryAfterMs,
      int attemptCode,
      boolean retrySafe) {
    Status status = Status.of(code);
    Attempt attempt = Attempt.values()[Math.max(0, Math.min(2, attemptCode))];
    switch (status) {
      case VAULT_INVALID_PASSWORD:
        return new WrongPassword(message, attempt, attemptsRemaining);
      case VAULT_LOCKED:
        return new Locked(message, attempt);
      case VAULT_RATE_LIMITED:
        return new RateLimited(message, attempt, retrySafe, retryAfterMs);
      case CANCELLED:
        return new Cancelled(message);
      case UNAVAILABLE:
        return new Unavailable(message, attempt, retrySafe);
      case WRONG_KEY:
        return new WrongKey(message);
      case CORRUPTED:
        return new Corrupted(message);
      case NOT_FOUND:
      case VAULT_NOT_REGISTERED:
        return new NotFound(status, message);
      default:
        return new BkvException(status, message, attempt, retrySafe);
    }
  }
}
