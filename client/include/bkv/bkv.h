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
 *  - Every long call (backup, restore, repository and vault calls) takes a
 *    bkv_cancel (NULL: not cancellable); bkv_cancel_request from any thread
 *    makes it return BKV_CANCELLED at its next safe point.
 *  - Only the bkv_* functions below are exported (libbkv.so.<MAJOR>); a
 *    change that breaks them bumps BKV_VERSION_MAJOR and the SONAME.
 *    docs/sdk.md says how to integrate and which thread runs callbacks.
 */
#ifndef BKV_BKV_H_
#define BKV_BKV_H_

#include <stddef.h>
#include <stdint.h>

#define BKV_VERSION_MAJOR 0
#define BKV_VERSION_MINOR 1
#define BKV_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* The symbols are exported even when the library is built with
 * -fvisibility=hidden. */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
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
  BKV_VAULT_CONFIG = 14, /* the vault is not the configured one (context,
                            server identity, public key or protocol version
                            differ; the message names which): nothing spent */
  BKV_VAULT_PROOF_REQUIRED = 15, /* replacing or deleting an active record
                                   needs its password, or a due reset */
  BKV_CANCELLED = 16, /* the app cancelled the call (bkv_cancel_request):
                         nothing was damaged and no attempt was spent */
  /* Threshold realms (docs/threshold.md, "The client"): */
  BKV_VAULT_REALM_FAULT = 17,     /* a realm misbehaved (bad proof, share or
                                     descriptor); the message names its id.
                                     Never a wrong password */
  BKV_VAULT_REALMS_DISAGREE = 18, /* no registration is held by t realms */
  BKV_VAULT_STALE = 19, /* the agreeing realms hold an older registration
                           than this device last saw: nothing was spent */
  BKV_VAULT_REALM_DEGRADED = 20, /* a realm is LOCKED, lags or is silent and
                                   cannot be re-registered now (the message
                                   names it): one failure fewer is survived */
  BKV_VAULT_PASSWORD_CHANGED_DEGRADED = 21, /* bkv_realms_change_password
                                   only: the NEW password is in force (t or
                                   more realms took it), but the realms the
                                   message names did not: tell the user the
                                   new password and the realm's operator */
  BKV_VAULT_PASSWORD_CHANGE_UNKNOWN = 22    /* bkv_realms_change_password only:
                                      either password may be in force (its
                                      Commits began and an answer is missing, or
                                      an earlier cut change was completed first;
                                      the message says which): call again with
                                      the same passwords (nothing is counted) */
} bkv_status;

typedef struct bkv_key bkv_key;
typedef struct bkv_store bkv_store;

/* Errors. */
void bkv_error_free(char* err);
void bkv_string_free(char* s);
const char* bkv_status_name(bkv_status status);

/* The library's version, "MAJOR.MINOR.PATCH"; may differ from the
 * BKV_VERSION_* the app was compiled with (same MAJOR: same ABI). */
const char* bkv_version(void);

/* Cancellation. One token per operation (or a group of operations). Once
 * requested it stays requested: a call given a cancelled token returns
 * BKV_CANCELLED at its first safe point. Safe points: between store
 * operations and blocks of a transfer, before each vault RPC, during retry
 * waits, and inside vault RPCs that change nothing. A vault call that has
 * sent its counted or committing RPC finishes it first, so a cancel never
 * spends an attempt nor leaves the vault's state unknown. */
typedef struct bkv_cancel bkv_cancel;
bkv_status bkv_cancel_new(bkv_cancel** out, char** err);
/* Any thread, any time before bkv_cancel_free; does not block. */
void bkv_cancel_request(bkv_cancel* cancel);
/* Must not race a call still using the token. */
void bkv_cancel_free(bkv_cancel* cancel);

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

/* App-supplied stores (Google Drive, iCloud, ... through the platform SDK).
 *
 * The store is a flat namespace of objects named [A-Za-z0-9._-]{1,200}.
 * Every callback returns BKV_OK, or the status that says what happened:
 *   BKV_NOT_FOUND     no such object (get at offset 0, stat)
 *   BKV_UNAVAILABLE   network, quota or server trouble; the SDK's caller
 *                     gets BKV_UNAVAILABLE and may retry later
 *   BKV_CANCELLED     the user cancelled inside the platform SDK
 *   BKV_INVALID_ARGUMENT, BKV_CORRUPTED, BKV_INTERNAL: passed on as such
 * and may write a reason (no secrets) into error->message; the SDK adds the
 * store's name, the operation and the object.
 *
 * Callbacks run on the thread of the SDK call or on one of its worker
 * threads, one at a time per bkv_store; they must not call back into the
 * SDK with the same store. */
typedef struct bkv_store_error {
  char message[256]; /* NUL-terminated; starts empty */
} bkv_store_error;

/* Pulls the next bytes of an object being stored; *out_len == 0 at the end.
 * A non-OK status (e.g. BKV_CANCELLED) means: abandon this put. */
typedef bkv_status (*bkv_read_fn)(void* reader, uint8_t* buf, size_t cap,
                                  size_t* out_len);
/* Reports one object to bkv_store_callbacks.list. */
typedef void (*bkv_list_fn)(void* lister, const char* name, uint64_t size);

typedef struct bkv_store_callbacks {
  /* Stores `name` with the bytes pulled from read(reader, ...) until it
   * gives 0 bytes. ATOMIC: readers see the old object or the complete new
   * one, never a part, even if the upload fails or the app dies (upload to
   * a temporary name and rename, or use the platform's atomic upload). An
   * existing object is replaced. If read fails, return its status. */
  bkv_status (*put)(void* ctx, const char* name, bkv_read_fn read, void* reader,
                    bkv_store_error* error);
  /* Copies up to `cap` bytes of `name` from `offset` into buf; fewer than
   * cap only at the end of the object. */
  bkv_status (*get)(void* ctx, const char* name, uint64_t offset, uint8_t* buf,
                    size_t cap, size_t* out_len, bkv_store_error* error);
  /* Calls emit(lister, name, size) for every object. */
  bkv_status (*list)(void* ctx, bkv_list_fn emit, void* lister,
                     bkv_store_error* error);
  /* Deletes `name`; BKV_OK when it does not exist. */
  bkv_status (*remove)(void* ctx, const char* name, bkv_store_error* error);
  /* The size of `name`, or BKV_NOT_FOUND. */
  bkv_status (*stat)(void* ctx, const char* name, uint64_t* out_size,
                     bkv_store_error* error);
  /* Optional: called once by bkv_store_free. */
  void (*destroy)(void* ctx);
} bkv_store_callbacks;

/* `name` (e.g. "gdrive:/Backups/bkv") appears in messages; the callbacks
 * struct is copied; ctx is passed to every callback. */
bkv_status bkv_store_new_callbacks(const bkv_store_callbacks* callbacks,
                                   void* ctx, const char* name, bkv_store** out,
                                   char** err);

/* Called from a worker thread with bytes done and expected (0: unknown). */
typedef void (*bkv_progress_fn)(uint64_t done, uint64_t total, void* ctx);

typedef struct bkv_backup_options {
  uint32_t chunk_size; /* 0: default (65536) */
  int compress;        /* non-zero: zstd before encryption */
  uint32_t keep;       /* prune to this many backups after success; 0: all */
  bkv_progress_fn progress;
  void* progress_ctx;
  bkv_cancel* cancel; /* NULL: not cancellable */
} bkv_backup_options;

/* Defaults: chunk_size 0, compress 1, keep 0, no progress, no cancel. */
void bkv_backup_options_init(bkv_backup_options* options);

/* Backs up a file or a directory tree at `path` into the store's backup set
 * under `key` (the set's key; with key slots, the master key or a recovery
 * key or vault slot's secret: see "Key slots" below). *out_backup_id (optional)
 * receives the 32-hex-digit id. */
bkv_status bkv_backup(bkv_store* store, const bkv_key* key, const char* path,
                      const bkv_backup_options* options, char** out_backup_id,
                      char** err);

typedef struct bkv_restore_options {
  bkv_progress_fn progress;
  void* progress_ctx;
  bkv_cancel* cancel; /* NULL: not cancellable */
} bkv_restore_options;

/* Restores backup `backup_id` (a unique prefix, or NULL for the newest) to
 * `target_path`, which must not exist. Nothing is left at target_path on
 * failure (BKV_CANCELLED included). `options` may be NULL. */
bkv_status bkv_restore(bkv_store* store, const bkv_key* key,
                       const char* backup_id, const char* target_path,
                       const bkv_restore_options* options, char** err);

/* The backup ids in the set, oldest first, as one string separated by '\n'
 * (empty when there are none); free with bkv_string_free. */
bkv_status bkv_list(bkv_store* store, const bkv_key* key, char** out_ids,
                    char** err);

/* Incremental, deduplicated backups (repository format v2,
 * docs/backup-format.md): each backup is a snapshot that stores only chunks
 * the repository does not hold yet. A bkv_repo uses its store for its whole
 * life: free the repo before the store. One call at a time per repo. */
typedef struct bkv_repo bkv_repo;

typedef struct bkv_repo_options {
  int create;            /* non-zero: create the repository if missing */
  const char* state_dir; /* where this device remembers the newest snapshot
                            and keyring (generation, set, master key
                            fingerprint) to detect a store rolled back or
                            replaced; NULL: no check */
} bkv_repo_options;

/* `key` as for bkv_backup (a slot's secret opens through the keyring).
 * BKV_WRONG_KEY: another key's repository; BKV_NOT_FOUND: none (and not
 * create); BKV_CORRUPTED: damaged, or rolled back behind state_dir. */
bkv_status bkv_repo_open(bkv_store* store, const bkv_key* key,
                         const bkv_repo_options* options, bkv_repo** out,
                         char** err);
void bkv_repo_free(bkv_repo* repo);

typedef struct bkv_repo_stats {
  uint64_t files;
  uint64_t files_read;     /* new or changed: read and chunked */
  uint64_t bytes;          /* plaintext bytes of the snapshot's files */
  uint64_t new_bytes;      /* plaintext bytes of chunks uploaded now */
  uint64_t dedup_bytes;    /* plaintext bytes already in the repository */
  uint64_t uploaded_bytes; /* every object written, as stored */
} bkv_repo_stats;

typedef struct bkv_repo_backup_options {
  /* Called with the bytes uploaded so far (total 0: unknown). */
  bkv_progress_fn progress;
  void* progress_ctx;
  bkv_cancel* cancel;
} bkv_repo_backup_options;

/* Backs up a file or directory as a new snapshot. *out_snapshot_id
 * (optional, 32 hex digits) and *out_stats (optional) on BKV_OK. A failed
 * or cancelled backup leaves every snapshot intact; the next one reuses
 * what it uploaded. `options` may be NULL. */
bkv_status bkv_repo_backup(bkv_repo* repo, const char* path,
                           const bkv_repo_backup_options* options,
                           char** out_snapshot_id, bkv_repo_stats* out_stats,
                           char** err);

typedef struct bkv_snapshot {
  char id[33]; /* 32 hex digits */
  uint64_t seq;
  int64_t time_unix_ms;
  uint64_t files;
  uint64_t bytes;
  char* source; /* the path backed up */
} bkv_snapshot;

/* Oldest first; free with bkv_snapshots_free(*out, *out_count). */
bkv_status bkv_repo_snapshots(bkv_repo* repo, bkv_cancel* cancel,
                              bkv_snapshot** out, size_t* out_count,
                              char** err);
void bkv_snapshots_free(bkv_snapshot* snapshots, size_t count);

/* Restores snapshot `snapshot_id` (a unique prefix; NULL: the newest), or
 * only `subpath` of it (NULL: all), to `target_path`, which must not exist;
 * nothing is left there on failure. `options` may be NULL. */
bkv_status bkv_repo_restore(bkv_repo* repo, const char* snapshot_id,
                            const char* subpath, const char* target_path,
                            const bkv_restore_options* options, char** err);

/* Deletes all but the newest `keep_last` (>= 1) snapshots; their data stays
 * until bkv_repo_prune. *out_forgotten (optional): how many. */
bkv_status bkv_repo_forget(bkv_repo* repo, size_t keep_last, bkv_cancel* cancel,
                           size_t* out_forgotten, char** err);

/* Frees the space of forgotten snapshots; interrupted (or cancelled) at any
 * point, every snapshot still restores. *out_bytes_freed optional. */
bkv_status bkv_repo_prune(bkv_repo* repo, bkv_cancel* cancel,
                          uint64_t* out_bytes_freed, char** err);

/* Verifies the repository (with read_data: every chunk). BKV_CORRUPTED when
 * it found damage; *out_report (optional; bkv_string_free) lists one
 * problem per line. */
bkv_status bkv_repo_check(bkv_repo* repo, int read_data, bkv_cancel* cancel,
                          char** out_report, char** err);

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
 *   BKV_CANCELLED         the `cancel` token (optional, NULL: none) was
 *                         requested; nothing was spent or changed: a call
 *                         that sent its counted or committing RPC finishes
 *                         instead (see bkv_cancel)
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
                              const bkv_key* key, bkv_cancel* cancel,
                              bkv_vault_error* out_detail, char** err);

/* Recovers the key for `account`; free *out_key with bkv_key_free. A wrong
 * password spends one attempt (BKV_VAULT_INVALID_PASSWORD, with
 * out_detail->attempts_remaining); the last one gives BKV_VAULT_LOCKED.
 * BKV_VAULT_NOT_REGISTERED and BKV_VAULT_LOCKED spend none. *out_key is set
 * only on BKV_OK. */
bkv_status bkv_vault_recover(bkv_vault* vault, const char* account,
                             const char* password, size_t password_len,
                             bkv_key** out_key, bkv_cancel* cancel,
                             bkv_vault_error* out_detail, char** err);

/* Threshold realms (docs/threshold.md, "The client"): the key is split
 * across the t-of-n realms of a realm-set file; registration needs all n,
 * recovery any t that agree. A realm that misbehaves is
 * BKV_VAULT_REALM_FAULT naming it, never a wrong password. Thread-safe:
 * every call on a handle takes its mutex, so calls from several threads run
 * one after the other (bkv_realms_free must not race with a call). */
typedef struct bkv_realms bkv_realms;

typedef struct bkv_realms_options {
  const char* realm_set_file; /* path of the realm-set file */
  /* One account token per realm (aud = that realm's id), in the file's
   * realm order; account_token_count must be n. A realm that the NEW file
   * of a migration lists as retired may get "" (docs/threshold.md, "A realm
   * that left for good"). */
  const char* const* account_tokens;
  size_t account_token_count;
  const char* tls_root_certs; /* as in bkv_vault_options */
  uint32_t timeout_ms;        /* per RPC; 0: 30000 */
  uint32_t argon2_iterations; /* as in bkv_vault_options; 0: default */
  uint32_t argon2_memory_kib;
  uint32_t argon2_parallelism;
  int insecure_plaintext;
  /* Where the newest registration and an unfinished commit are remembered
   * (roll-forward); NULL: nothing is remembered. */
  const char* state_dir;
  int no_rotation; /* nonzero: no fresh re-registration after a recovery */
} bkv_realms_options;

void bkv_realms_options_init(bkv_realms_options* options);
bkv_status bkv_realms_open(const bkv_realms_options* options, bkv_realms** out,
                           char** err);
void bkv_realms_free(bkv_realms* realms);

/* Every bkv_realms_* call taking `account` refuses an empty one
 * (BKV_VAULT_CONFIG, nothing sent): the realms check the account against
 * their tokens only when it is named. */

/* Stores `key` behind the password at every realm (all n must answer).
 * BKV_VAULT_REALM_DEGRADED: the new registration is committed at t or more
 * realms and in force (use the new password), but a realm that accepted its
 * Prepare refused the Commit (a realm fault, named; a recovery repairs it). */
bkv_status bkv_realms_register(bkv_realms* realms, const char* account,
                               const char* password, size_t password_len,
                               const bkv_key* key, bkv_vault_error* out_detail,
                               char** err);

/* Recovers the key through the agreeing realms; free *out_key with
 * bkv_key_free. *out_faults (optional, NULL when none): the realms excluded
 * on the way, free with bkv_string_free. A wrong password spends one attempt
 * at each realm of the group (BKV_VAULT_INVALID_PASSWORD with the lowest
 * attempts_remaining). */
bkv_status bkv_realms_recover(bkv_realms* realms, const char* account,
                              const char* password, size_t password_len,
                              bkv_key** out_key, char** out_faults,
                              bkv_vault_error* out_detail, char** err);

/* After a BKV_OK bkv_realms_recover on this handle, with the same password
 * that recover verified. The handle keeps that recovery's key and proofs
 * only when it left a realm lagging (otherwise this call is BKV_OK and
 * sends nothing), and wipes them at the next recover whatever its outcome,
 * after a BKV_OK repair, at the first call more than 9 minutes after the
 * recovery (the proofs last 10 at the realms; recover again) and at
 * bkv_realms_free; a failed repair keeps them for a retry. With the same
 * password that recover
 * verified (any other, e.g. a wiped buffer, is BKV_VAULT_CONFIG and nothing is
 * sent; a repair never changes the password): brings back every realm that is
 * LOCKED, holds no registration or an older one (a realm ahead, holding a
 * registration in progress, is never reset: BKV_VAULT_REALM_DEGRADED "is
 * ahead"), then registers a fresh version at all n
 * (docs/threshold.md, "Repair of a LOCKED or lagging realm"). BKV_OK: every
 * realm holds the current version (*out_repaired, optional, NULL when none:
 * the realms brought back, free with bkv_string_free). A realm that cannot
 * be brought back now is BKV_VAULT_REALM_DEGRADED naming it and why (then
 * nothing was registered). With rotation on, the recovery's background
 * rotation already repairs (this call waits for it first); this call then
 * reports what it could not. Spends no attempt. */
bkv_status bkv_realms_repair(bkv_realms* realms, const char* account,
                             const char* password, size_t password_len,
                             char** out_repaired, bkv_vault_error* out_detail,
                             char** err);

/* A successful bkv_realms_recover returns the key first and then, unless
 * no_rotation, re-registers it with fresh shares at every realm on the
 * handle's background thread. This waits for that rotation: BKV_OK when it
 * re-registered or none was running; otherwise its error (the recovered key
 * is unaffected and the next recovery rotates again). The handle's other
 * calls and bkv_realms_free wait for it as well. */
bkv_status bkv_realms_wait_rotation(bkv_realms* realms,
                                    bkv_vault_error* out_detail, char** err);

/* Stores the same key behind `new_password`: a recovery with `old_password`
 * (one attempt at each realm of the group, like any), then a fresh
 * registration at all n (docs/threshold.md, "Password change"). BKV_OK: the
 * new password is in force at every realm. BKV_VAULT_PASSWORD_CHANGED_DEGRADED:
 * the new password is in force (t or more realms committed it); the realms
 * *err names did not take it (a recovery's rotation repairs them).
 * BKV_VAULT_PASSWORD_CHANGE_UNKNOWN: either password may be in force: call
 * again with the same passwords. Any other status: nothing changed, the OLD
 * password is in force (BKV_VAULT_REALM_DEGRADED: a realm is down or cannot
 * be repaired, named in *err). The app's rule: BKV_OK or 21, the new
 * password; 22, call again; anything else, the old one. */
bkv_status bkv_realms_change_password(bkv_realms* realms, const char* account,
                                      const char* old_password,
                                      size_t old_password_len,
                                      const char* new_password,
                                      size_t new_password_len,
                                      bkv_vault_error* out_detail, char** err);

/* Replaces the realm set (docs/threshold.md, "Replacing a realm set"):
 * `to` is a handle on the NEW realm-set file, `from` on the old one, both
 * opened with the same state_dir (BKV_VAULT_CONFIG otherwise).
 * Recovers through `from` (counted like any recovery; every realm that
 * leaves must answer it, or BKV_VAULT_REALM_DEGRADED before anything is
 * prepared, unless `to`'s file lists it as `retired` and it answers
 * nothing: then it is not waited for and bkv_realms_migrate2's note names
 * it), registers the key under the same password at every realm of
 * `to`, checks it there (free), then deletes the record at the realms that
 * left. BKV_OK: the app must now use the new realm-set file (a crash before
 * it switched: call this again, it resumes without a recovery). A
 * state_dir is required. *out_not_deleted (optional, NULL when none; free
 * with bkv_string_free): a SECURITY state: realms that left still hold the
 * replaced registration (with a corrupted old realm, G guesses beyond the
 * limit, with the old password), and why; call again later until NULL. */
bkv_status bkv_realms_migrate(bkv_realms* to, bkv_realms* from,
                              const char* account, const char* password,
                              size_t password_len, char** out_not_deleted,
                              bkv_vault_error* out_detail, char** err);

/* What bkv_realms_migrate2 reports (every string NULL when empty; free the
 * whole struct's strings with bkv_realms_migration_free). */
typedef struct bkv_realms_migration {
  /* Non-zero: an earlier call got past its Commits; nothing was recovered
   * or counted now. */
  int resumed;
  /* As bkv_realms_migrate's *out_not_deleted: a SECURITY state. */
  char* not_deleted;
  char* deleted; /* realm ids whose record was deleted, ", "-separated */
  char* lagging; /* new realms not (yet) on the new registration, and why */
  char* faults;  /* old realms excluded during the recovery, and why */
  /* For the user: what an earlier cut run's completion did, and that a
   * multi-realm replacement commits the joining realms first; known before
   * the call from the two files (docs/threshold.md, "Order"). */
  char* note;
} bkv_realms_migration;

/* bkv_realms_migrate, reporting everything it knows in *out (optional:
 * NULL ignores it; zeroed first, also on failure). */
bkv_status bkv_realms_migrate2(bkv_realms* to, bkv_realms* from,
                               const char* account, const char* password,
                               size_t password_len, bkv_realms_migration* out,
                               bkv_vault_error* out_detail, char** err);
/* Frees the strings of *migration and sets them to NULL; NULL is a no-op. */
void bkv_realms_migration_free(bkv_realms_migration* migration);

/* The account's record; spends no attempt. attempts_remaining and
 * attempt_limit are optional (NULL). */
bkv_status bkv_vault_status(bkv_vault* vault, bkv_vault_state* out_state,
                            uint32_t* out_attempts_remaining,
                            uint32_t* out_attempt_limit, bkv_cancel* cancel,
                            bkv_vault_error* out_detail, char** err);

/* Deletes the account's record (and with it the key); BKV_OK when there was
 * none. An ACTIVE record needs a due reset (bkv_vault_request_reset), else
 * BKV_VAULT_PROOF_REQUIRED: use bkv_vault_delete_with_password. */
bkv_status bkv_vault_delete(bkv_vault* vault, bkv_cancel* cancel,
                            bkv_vault_error* out_detail, char** err);

/* Proves the password (one recovery: one attempt, like
 * bkv_vault_recover), then deletes the record. */
bkv_status bkv_vault_delete_with_password(bkv_vault* vault, const char* account,
                                          const char* password,
                                          size_t password_len,
                                          bkv_cancel* cancel,
                                          bkv_vault_error* out_detail,
                                          char** err);

/* Proves the old password (one attempt), then stores the same key behind the
 * new one. *out_attempt_limit (optional) is the vault's limit for it. If the
 * vault's answer is lost, the message says which password is current. */
bkv_status bkv_vault_change_password(
    bkv_vault* vault, const char* account, const char* old_password,
    size_t old_password_len, const char* new_password, size_t new_password_len,
    uint32_t* out_attempt_limit, bkv_cancel* cancel,
    bkv_vault_error* out_detail, char** err);

/* "Forgot password": asks the vault to make the ACTIVE record replaceable
 * without the password after its reset delay; *out_due_unix_ms is when.
 * From then bkv_vault_register (a new password, with the user's 64-digit
 * key, or a new key: backups made with the old key are then unreadable
 * unless the user has that key) and bkv_vault_delete need no proof. A
 * successful recovery before then cancels the reset. Spends no attempt. */
bkv_status bkv_vault_request_reset(bkv_vault* vault, int64_t* out_due_unix_ms,
                                   bkv_cancel* cancel,
                                   bkv_vault_error* out_detail, char** err);

/* The record's identity and pending reset (0 when none); spends no
 * attempt. */
bkv_status bkv_vault_registration(bkv_vault* vault,
                                  uint64_t* out_registration_id,
                                  int64_t* out_reset_due_unix_ms,
                                  bkv_cancel* cancel,
                                  bkv_vault_error* out_detail, char** err);

/* Key slots (docs/backup-format.md, "Keyring"; docs/sdk.md, "Passkeys").
 * A set has one master key and several ways in: its 64-digit recovery key,
 * the vault's released key, passkeys. The app runs the platform's WebAuthn
 * ceremony (Credential Manager, AuthenticationServices, a browser) with the
 * `prf` extension and hands over the 32-byte output; the SDK calls no
 * platform API. A set without a keyring (made before key slots) opens with
 * its one key as before; adding a slot migrates it, re-encrypting nothing.
 * Failures: BKV_NOT_FOUND (no slot for that secret: another passkey),
 * BKV_WRONG_KEY (its slot does not open: another salt or key),
 * BKV_CORRUPTED (the keyring was changed by the store); none writes.
 * The calls that take a bkv_key (bkv_backup, bkv_restore, bkv_list,
 * bkv_repo_open) accept the master key or the secret of any recovery-key or
 * vault slot (what bkv_vault_recover released) and unwrap the master key
 * through the keyring themselves; a passkey opens through bkv_slots_unlock. */
typedef struct bkv_slot_secret bkv_slot_secret;
/* The 64-digit key (or a legacy set's key). */
bkv_status bkv_slot_secret_recovery_key(const bkv_key* key,
                                        bkv_slot_secret** out, char** err);
/* A passkey: the credential's raw id and its PRF output (results.first) for
 * the salt its slot lists (bkv_slots_passkeys). */
bkv_status bkv_slot_secret_passkey(const uint8_t* credential_id,
                                   size_t credential_id_len,
                                   const uint8_t prf_output[32],
                                   bkv_slot_secret** out, char** err);
/* The vault: what bkv_vault_recover released, the vault's pinned public key
 * (32 bytes) and the account. */
bkv_status bkv_slot_secret_vault(const bkv_key* released,
                                 const uint8_t vault_public_key[32],
                                 const char* account, bkv_slot_secret** out,
                                 char** err);
void bkv_slot_secret_free(bkv_slot_secret* secret);

/* The master key for every other call (bkv_repo_open, ...). */
bkv_status bkv_slots_unlock(bkv_store* store, const bkv_slot_secret* secret,
                            bkv_key** out_master, char** err);

/* The passkey slots, for one assertion that evaluates each credential's own
 * salt: allowCredentials = the ids, prf.evalByCredential[id] = {first:
 * salt}. Free with bkv_passkey_slots_free. */
typedef struct bkv_passkey_slot {
  uint8_t slot_id[16];
  uint8_t salt[32];
  uint8_t* credential_id;
  size_t credential_id_len;
  char* rp_id;
} bkv_passkey_slot;
bkv_status bkv_slots_passkeys(bkv_store* store, bkv_passkey_slot** out,
                              size_t* out_count, char** err);
void bkv_passkey_slots_free(bkv_passkey_slot* slots, size_t count);

/* Adds a passkey slot: `opened` opens the set; the new credential's PRF
 * output was evaluated on `salt` (32 random bytes the app chose for this
 * slot, e.g. from bkv_random_salt). */
bkv_status bkv_slots_add_passkey(
    bkv_store* store, const bkv_slot_secret* opened, const char* rp_id,
    const uint8_t* credential_id, size_t credential_id_len,
    const uint8_t salt[32], const uint8_t prf_output[32],
    uint8_t out_slot_id[16], char** err);
/* Adds a recovery-key slot for `new_key` (bkv_key_generate; show it). */
bkv_status bkv_slots_add_recovery_key(bkv_store* store,
                                      const bkv_slot_secret* opened,
                                      const bkv_key* new_key,
                                      uint8_t out_slot_id[16], char** err);
/* Removes a slot (the last is refused: BKV_INVALID_ARGUMENT).
 * *out_was_master (optional) is 1 when that slot's secret is the master key
 * itself (a migrated set's first slot): only a rekey locks its holder out.
 * Whoever already unwrapped the master key keeps it. */
bkv_status bkv_slots_remove(bkv_store* store, const bkv_slot_secret* opened,
                            const uint8_t slot_id[16], int* out_was_master,
                            char** err);
/* Salt rotation: one assertion with prf eval {first: old salt, second:
 * new_salt}; `old_output` (a passkey secret) opens the slot, which is
 * re-wrapped under new_salt with `new_output`. */
bkv_status bkv_slots_rotate_passkey_salt(bkv_store* store,
                                         const bkv_slot_secret* old_output,
                                         const uint8_t new_salt[32],
                                         const uint8_t new_output[32],
                                         char** err);
/* 32 random bytes from the system CSPRNG (a new slot's PRF salt). */
bkv_status bkv_random_salt(uint8_t out[32], char** err);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* BKV_BKV_H_ */
