/* bkv C ABI: backup keys, encrypted backups and blob stores for apps.
 *
 * Conventions
 *  - Every fallible call returns a bkv_status; BKV_OK is 0. On failure, if
 *    `err` is not NULL, *err receives a message the caller frees with
 *    bkv_error_free(). Messages never contain secrets.
 *  - Objects are opaque handles created by bkv_*_new/open/generate/parse
 *    and released by the matching bkv_*_free (NULL is accepted).
 *  - Strings are UTF-8 and NUL-terminated; returned strings are freed with
 *    bkv_string_free() (which wipes them first: key text is secret).
 *  - A handle may be used from one thread at a time; different handles are
 *    independent. bkv_vault is the exception: see below.
 *  - Secret inputs (passwords) are byte buffers with a length, need no NUL
 *    and are copied into wiped memory before the call does anything else;
 *    the caller may wipe its buffer as soon as the call returns.
 */
#ifndef BKV_BKV_H_
#define BKV_BKV_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum bkv_status {
  BKV_OK = 0,
  BKV_INVALID_ARGUMENT = 1, /* bad key text, URL, option or path */
  BKV_WRONG_KEY = 2,        /* the key does not open this backup or store */
  BKV_CORRUPTED = 3,        /* backup truncated, modified or out of order */
  BKV_NOT_FOUND = 4,        /* no such backup, object or file */
  BKV_UNAVAILABLE = 5,      /* store unreachable or I/O error; retry later */
  BKV_ALREADY_EXISTS = 6,   /* restore target exists */
  BKV_UNSUPPORTED = 7,      /* newer format or feature not built in */
  BKV_INTERNAL = 8,
  /* Vault calls (bkv_vault_*); see bkv_vault_error for the numbers. */
  BKV_VAULT_INVALID_PASSWORD = 9, /* wrong password: one attempt spent */
  BKV_VAULT_LOCKED = 10,          /* no attempts left: the key is destroyed */
  BKV_VAULT_NOT_REGISTERED = 11,  /* no key is stored for this account */
  BKV_VAULT_RATE_LIMITED = 12,    /* too many calls: wait retry_after_ms */
  BKV_VAULT_UNAUTHENTICATED = 13, /* account token refused or expired: get a
                                     new one, then bkv_vault_set_token */
  BKV_VAULT_CONFIG = 14,        /* the vault is not the configured one (context,
                                   server identity, public key or protocol version
                                   differ; the message names which): nothing spent */
  BKV_VAULT_PROOF_REQUIRED = 15 /* replacing or deleting an active record
                                   needs its password, or a due reset */
} bkv_status;

typedef struct bkv_key bkv_key;
typedef struct bkv_store bkv_store;

/* Errors. */
void bkv_error_free(char* err);
void bkv_string_free(char* s);
const char* bkv_status_name(bkv_status status);

/* Backup keys: 32 random bytes shown as 64 hex digits in 16 groups of 4. */
bkv_status bkv_key_generate(bkv_key** out, char** err);
/* Accepts any spacing, dashes and case; `len` bytes of `text`. */
bkv_status bkv_key_parse(const char* text, size_t len, bkv_key** out,
                         char** err);
/* *out_text: "xxxx xxxx ... xxxx" (79 chars); free with bkv_string_free. */
bkv_status bkv_key_format(const bkv_key* key, char** out_text, char** err);
void bkv_key_free(bkv_key* key);

/* Stores: file:///dir, s3://bucket/prefix?endpoint=...&region=...,
 * webdav(s)://host:port/path; credentials from the environment. */
bkv_status bkv_store_open(const char* url, bkv_store** out, char** err);
void bkv_store_free(bkv_store* store);

/* Called from a worker thread with bytes done and expected (0: unknown). */
typedef void (*bkv_progress_fn)(uint64_t done, uint64_t total, void* ctx);

typedef struct bkv_backup_options {
  uint32_t chunk_size; /* 0: default (65536) */
  int compress;        /* non-zero: zstd before encryption */
  uint32_t keep;       /* prune to this many backups after success; 0: all */
  bkv_progress_fn progress;
  void* progress_ctx;
} bkv_backup_options;

/* Defaults: chunk_size 0, compress 1, keep 0, no progress. */
void bkv_backup_options_init(bkv_backup_options* options);

/* Backs up a file or a directory tree at `path` into the store's backup set
 * under `key`. *out_backup_id (optional) receives the 32-hex-digit id. */
bkv_status bkv_backup(bkv_store* store, const bkv_key* key, const char* path,
                      const bkv_backup_options* options, char** out_backup_id,
                      char** err);

/* Restores backup `backup_id` (a unique prefix, or NULL for the newest) to
 * `target_path`, which must not exist. Nothing is left at target_path on
 * failure. */
bkv_status bkv_restore(bkv_store* store, const bkv_key* key,
                       const char* backup_id, const char* target_path,
                       bkv_progress_fn progress, void* progress_ctx,
                       char** err);

/* The backup ids in the set, oldest first, as one string separated by '\n'
 * (empty when there are none); free with bkv_string_free. */
bkv_status bkv_list(bkv_store* store, const bkv_key* key, char** out_ids,
                    char** err);

/* Vault: the backup key stored behind a password (docs/protocol.md).
 *
 * The vault runs OPAQUE, so it never sees the password or the backup key,
 * and counts wrong passwords: after the attempt limit the key is destroyed
 * and every later recovery fails with BKV_VAULT_LOCKED. The account is the
 * one named by the account token the app's messaging service issues.
 *
 * Every call that talks to the vault blocks for network round trips, and
 * registration and recovery also run Argon2id (about a second on a phone
 * with the defaults): call them from a worker thread, never the UI thread.
 * Failures other than the BKV_VAULT_* codes:
 *   BKV_INVALID_ARGUMENT  bad options or arguments (a bug or misconfiguration)
 *   BKV_UNAVAILABLE       network or vault trouble, or a timeout: retry with
 *                         backoff. bkv_vault_error.attempt says whether an
 *                         interrupted recovery spent an attempt (UNKNOWN:
 *                         bkv_vault_status tells); calls the vault refused
 *                         as safe to repeat are repeated within
 *                         max_retry_wait_ms
 *   BKV_INTERNAL          anything else
 *
 * Unlike other handles, a bkv_vault may be used from several threads at once
 * (including bkv_vault_set_token); bkv_vault_free must not race any call. */
typedef struct bkv_vault bkv_vault;

typedef struct bkv_vault_options {
  const char* address;           /* "host:port" */
  const char* server_public_key; /* the vault's OPAQUE public key, pinned: 64
                                    hex digits (`bkv-vault hsm status`) */
  const char* opaque_context;    /* NULL: "bkv OPAQUE v1" */
  const char* account_token;     /* bearer token for the account; NULL: none
                                    yet (calls fail BKV_VAULT_UNAUTHENTICATED
                                    until bkv_vault_set_token) */
  const char* tls_root_certs;    /* PEM roots to trust; "": TLS with the
                                    default roots; NULL: plaintext, accepted
                                    only for a loopback address unless
                                    insecure_plaintext is set */
  uint32_t timeout_ms;           /* per RPC; 0: 30000 */
  /* Argon2id for new registrations (recovery uses the record's own); each 0
   * is its default (t=3, m=65536 KiB, p=4). Below t=2, m=19456, p=1 is
   * refused. */
  uint32_t argon2_iterations;
  uint32_t argon2_memory_kib;
  uint32_t argon2_parallelism;
  const char* server_identity; /* the vault's OPAQUE server identity; NULL:
                                  its public key (the default) */
  /* Nonzero: plaintext to a non-loopback address. DANGEROUS: the account
   * token (a bearer credential) and the whole exchange cross the network in
   * the clear. For test networks only. */
  int insecure_plaintext;
  /* Total time a call may wait to retry when the vault refuses it with a
   * retry time and marks it as not counted (rate limit, vault unavailable);
   * 0: never wait, return BKV_VAULT_RATE_LIMITED / BKV_UNAVAILABLE. */
  uint32_t max_retry_wait_ms;
} bkv_vault_options;

/* All zero/NULL: the caller then sets address, server_public_key,
 * account_token and (for anything but loopback) tls_root_certs. */
void bkv_vault_options_init(bkv_vault_options* options);

/* What the vault said about a failure; zero when it said nothing. Optional
 * (NULL) in every call that takes one. */
typedef enum bkv_vault_attempt {
  BKV_VAULT_ATTEMPT_NOT_SPENT = 0,
  BKV_VAULT_ATTEMPT_SPENT = 1,
  /* The request may have reached the vault before the failure: an attempt
   * may have been spent; bkv_vault_status tells. Not retried. */
  BKV_VAULT_ATTEMPT_UNKNOWN = 2
} bkv_vault_attempt;

typedef struct bkv_vault_error {
  uint32_t attempts_remaining; /* BKV_VAULT_INVALID_PASSWORD, or after an
                                  interrupted recovery */
  uint32_t retry_after_ms;     /* BKV_VAULT_RATE_LIMITED */
  bkv_vault_attempt attempt;   /* what the failed call did to the counter */
  int retry_safe;              /* nonzero: repeating the call spends nothing */
} bkv_vault_error;

typedef enum bkv_vault_state {
  BKV_VAULT_STATE_NONE = 0,   /* no key registered */
  BKV_VAULT_STATE_ACTIVE = 1, /* a key is registered and recoverable */
  BKV_VAULT_STATE_LOCKED = 2  /* attempts used up; the key is destroyed */
} bkv_vault_state;

/* Validates the options and copies every string; does not contact the
 * vault (the first call connects). */
bkv_status bkv_vault_open(const bkv_vault_options* options, bkv_vault** out,
                          char** err);
void bkv_vault_free(bkv_vault* vault);

/* Replaces the account token for later calls (e.g. after
 * BKV_VAULT_UNAUTHENTICATED). A call already running may use either. */
bkv_status bkv_vault_set_token(bkv_vault* vault, const char* account_token,
                               char** err);

/* Stores `key` for `account` behind the `password_len` bytes of `password`,
 * with the attempt counter at the vault's limit. An ACTIVE record is
 * replaced only with a due reset (else BKV_VAULT_PROOF_REQUIRED: change a
 * known password with bkv_vault_change_password). A locked record refuses
 * it (BKV_VAULT_LOCKED): bkv_vault_delete first. Before the first counted
 * call the vault's GetVaultInfo is checked against the options
 * (BKV_VAULT_CONFIG on a mismatch). */
bkv_status bkv_vault_register(bkv_vault* vault, const char* account,
                              const char* password, size_t password_len,
                              const bkv_key* key, bkv_vault_error* out_detail,
                              char** err);

/* Recovers the key for `account`; free *out_key with bkv_key_free. A wrong
 * password spends one attempt (BKV_VAULT_INVALID_PASSWORD, with
 * out_detail->attempts_remaining); the last one gives BKV_VAULT_LOCKED.
 * BKV_VAULT_NOT_REGISTERED and BKV_VAULT_LOCKED spend none. *out_key is set
 * only on BKV_OK. */
bkv_status bkv_vault_recover(bkv_vault* vault, const char* account,
                             const char* password, size_t password_len,
                             bkv_key** out_key, bkv_vault_error* out_detail,
                             char** err);

/* The account's record; spends no attempt. attempts_remaining and
 * attempt_limit are optional (NULL). */
bkv_status bkv_vault_status(bkv_vault* vault, bkv_vault_state* out_state,
                            uint32_t* out_attempts_remaining,
                            uint32_t* out_attempt_limit,
                            bkv_vault_error* out_detail, char** err);

/* Deletes the account's record (and with it the key); BKV_OK when there was
 * none. An ACTIVE record needs a due reset (bkv_vault_request_reset), else
 * BKV_VAULT_PROOF_REQUIRED: use bkv_vault_delete_with_password. */
bkv_status bkv_vault_delete(bkv_vault* vault, bkv_vault_error* out_detail,
                            char** err);

/* Proves the password (one recovery: one attempt, like
 * bkv_vault_recover), then deletes the record. */
bkv_status bkv_vault_delete_with_password(bkv_vault* vault, const char* account,
                                          const char* password,
                                          size_t password_len,
                                          bkv_vault_error* out_detail,
                                          char** err);

/* Proves the old password (one attempt), then stores the same key behind the
 * new one. *out_attempt_limit (optional) is the vault's limit for it. If the
 * vault's answer is lost, the message says which password is current. */
bkv_status bkv_vault_change_password(
    bkv_vault* vault, const char* account, const char* old_password,
    size_t old_password_len, const char* new_password, size_t new_password_len,
    uint32_t* out_attempt_limit, bkv_vault_error* out_detail, char** err);

/* "Forgot password": asks the vault to make the ACTIVE record replaceable
 * without the password after its reset delay; *out_due_unix_ms is when.
 * From then bkv_vault_register (a new password, with the user's 64-digit
 * key, or a new key: backups made with the old key are then unreadable
 * unless the user has that key) and bkv_vault_delete need no proof. A
 * successful recovery before then cancels the reset. Spends no attempt. */
bkv_status bkv_vault_request_reset(bkv_vault* vault, int64_t* out_due_unix_ms,
                                   bkv_vault_error* out_detail, char** err);

/* The record's identity and pending reset (0 when none); spends no
 * attempt. */
bkv_status bkv_vault_registration(bkv_vault* vault,
                                  uint64_t* out_registration_id,
                                  int64_t* out_reset_due_unix_ms,
                                  bkv_vault_error* out_detail, char** err);

#ifdef __cplusplus
}
#endif

#endif /* BKV_BKV_H_ */
