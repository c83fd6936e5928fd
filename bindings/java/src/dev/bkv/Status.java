package dev.bkv;

/** The C ABI's bkv_status codes (bkv/bkv.h), one for one. */
public enum Status {
  OK(0),
  INVALID_ARGUMENT(1),
  WRONG_KEY(2),
  CORRUPTED(3),
  NOT_FOUND(4),
  UNAVAILABLE(5),
  ALREADY_EXISTS(6),
  UNSUPPORTED(7),
  INTERNAL(8),
  VAULT_INVALID_PASSWORD(9),
  VAULT_LOCKED(10),
  VAULT_NOT_REGISTERED(11),
  VAULT_RATE_LIMITED(12),
  VAULT_UNAUTHENTICATED(13),
  VAULT_CONFIG(14),
  VAULT_PROOF_REQUIRED(15),
  CANCELLED(16),
  // Threshold realms (bkv_realms_*).
  VAULT_REALM_FAULT(17),
  VAULT_REALMS_DISAGREE(18),
  VAULT_STALE(19),
  VAULT_REALM_DEGRADED(20),
  /** bkv_realms_change_password: the NEW password is in force; a realm lags. */
  VAULT_PASSWORD_CHANGED_DEGRADED(21),
  /** bkv_realms_change_password: either password may be in force; call again. */
  VAULT_PASSWORD_CHANGE_UNKNOWN(22);

  /** The numeric bkv_status. */
  public final int code;

  Status(int code) {
    this.code = code;
  }

  static Status of(int code) {
    for (Status s : values()) {
      if (s.code == code) return s;
    }
    return INTERNAL;
  }
}
