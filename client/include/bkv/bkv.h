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
 *    independent.
 *  - The vault calls (password registration and recovery) will be added as
 *    bkv_vault_* functions with their own handle; existing calls keep their
 *    signatures.
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
  BKV_INTERNAL = 8
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

#ifdef __cplusplus
}
#endif

#endif /* BKV_BKV_H_ */
