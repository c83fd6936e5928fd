/* Exercises the C ABI from C: keys, a file store, backup, list, restore,
 * an app-supplied callback store, cancellation, the repository calls and
 * the error paths. Exits non-zero on the first failed check. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkv/bkv.h"
#include "tests/client/dir_store_callbacks.h"

static int failures = 0;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

static void progress(uint64_t done, uint64_t total, void* ctx) {
  (void)total;
  *(uint64_t*)ctx = done;
}

/* Progress that cancels: runs on an SDK worker thread, so the cancel comes
 * from another thread than the call's, mid-transfer. */
static void cancel_on_progress(uint64_t done, uint64_t total, void* ctx) {
  (void)done;
  (void)total;
  bkv_cancel_request((bkv_cancel*)ctx);
}

/* A store whose cloud is down: every callback says UNAVAILABLE. */
static bkv_status down_put(void* ctx, const char* name, bkv_read_fn read,
                           void* reader, bkv_store_error* e) {
  (void)ctx, (void)name, (void)read, (void)reader;
  snprintf(e->message, sizeof e->message, "drive quota exceeded");
  return BKV_UNAVAILABLE;
}
static bkv_status down_get(void* ctx, const char* name, uint64_t offset,
                           uint8_t* buf, size_t cap, size_t* out_len,
                           bkv_store_error* e) {
  (void)ctx, (void)name, (void)offset, (void)buf, (void)cap, (void)out_len;
  snprintf(e->message, sizeof e->message, "drive quota exceeded");
  return BKV_UNAVAILABLE;
}
static bkv_status down_list(void* ctx, bkv_list_fn emit, void* lister,
                            bkv_store_error* e) {
  (void)ctx, (void)emit, (void)lister, (void)e;
  return BKV_UNAVAILABLE;
}
static bkv_status down_remove(void* ctx, const char* name, bkv_store_error* e) {
  (void)ctx, (void)name, (void)e;
  return BKV_UNAVAILABLE;
}
static bkv_status down_stat(void* ctx, const char* name, uint64_t* size,
                            bkv_store_error* e) {
  (void)ctx, (void)name, (void)size, (void)e;
  return BKV_NOT_FOUND;
}

static int count_files(const char* dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -gt 0", dir);
  return system(cmd) == 0;
}

/* The callback store: a backup/restore round trip through the app's
 * callbacks, and its errors typed. */
static void callback_store(const char* dir, const char* path, bkv_key* key) {
  char store_dir[300], target[300], cmd[800];
  char* err = NULL;
  snprintf(store_dir, sizeof store_dir, "%s/cloud", dir);
  bkv_store_callbacks cb = bkv_test_dir_callbacks();
  bkv_store* store = NULL;
  CHECK(bkv_store_new_callbacks(&cb, bkv_test_dir_ctx(store_dir),
                                "cloud:", &store, &err) == BKV_OK);
  char* id = NULL;
  CHECK(bkv_backup(store, key, path, NULL, &id, &err) == BKV_OK);
  snprintf(target, sizeof target, "%s/from-cloud.txt", dir);
  CHECK(bkv_restore(store, key, id, target, NULL, &err) == BKV_OK);
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, target);
  CHECK(system(cmd) == 0);
  bkv_string_free(id);
  bkv_store_free(store); /* frees the ctx through destroy */

  bkv_store_callbacks down = {down_put,    down_get,  down_list,
                              down_remove, down_stat, NULL};
  CHECK(bkv_store_new_callbacks(&down, NULL, "drive:/bkv", &store, &err) ==
        BKV_OK);
  CHECK(bkv_backup(store, key, path, NULL, NULL, &err) == BKV_UNAVAILABLE);
  CHECK(err != NULL && strstr(err, "drive:/bkv") != NULL &&
        strstr(err, "drive quota exceeded") != NULL);
  bkv_error_free(err);
  err = NULL;
  bkv_store_free(store);
  down.get = NULL;
  CHECK(bkv_store_new_callbacks(&down, NULL, "x", &store, &err) ==
        BKV_INVALID_ARGUMENT);
  bkv_error_free(err);
}

/* Cancellation: before the call, and from a worker thread mid-transfer.
 * Either way BKV_CANCELLED, no new backup, the old one restores, and no
 * partial restore is left. */
static void cancellation(const char* dir, bkv_store* store, bkv_key* key) {
  char path[300], target[300], cmd[800];
  char* err = NULL;
  /* Incompressible and larger than the restore pipeline's queues (a few
   * MiB), so the download is still running when the first progress call
   * cancels it. */
  snprintf(path, sizeof path, "%s/big.bin", dir);
  snprintf(cmd, sizeof cmd, "head -c 12000000 /dev/urandom > '%s'", path);
  CHECK(system(cmd) == 0);
  CHECK(bkv_backup(store, key, path, NULL, NULL, &err) == BKV_OK);
  char* before = NULL;
  CHECK(bkv_list(store, key, &before, &err) == BKV_OK);
  bkv_cancel* cancel = NULL;
  CHECK(bkv_cancel_new(&cancel, &err) == BKV_OK);
  bkv_backup_options opts;
  bkv_backup_options_init(&opts);
  opts.progress = cancel_on_progress;
  opts.progress_ctx = cancel;
  opts.cancel = cancel;
  CHECK(bkv_backup(store, key, path, &opts, NULL, &err) == BKV_CANCELLED);
  CHECK(err != NULL && strstr(err, "cancelled") != NULL);
  bkv_error_free(err);
  err = NULL;
  opts.progress = NULL; /* already cancelled: refused at once */
  CHECK(bkv_backup(store, key, path, &opts, NULL, NULL) == BKV_CANCELLED);
  char* after = NULL;
  CHECK(bkv_list(store, key, &after, &err) == BKV_OK);
  CHECK(before != NULL && after != NULL && strcmp(before, after) == 0);

  bkv_restore_options ropts = {cancel_on_progress, NULL, NULL};
  bkv_cancel* rcancel = NULL;
  CHECK(bkv_cancel_new(&rcancel, NULL) == BKV_OK);
  ropts.progress_ctx = rcancel;
  ropts.cancel = rcancel;
  snprintf(target, sizeof target, "%s/cancelled.txt", dir);
  CHECK(bkv_restore(store, key, NULL, target, &ropts, &err) == BKV_CANCELLED);
  CHECK(access(target, F_OK) != 0);
  bkv_error_free(err);
  err = NULL;
  CHECK(bkv_restore(store, key, NULL, target, NULL, &err) == BKV_OK);
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, target);
  CHECK(system(cmd) == 0);
  CHECK(strcmp(bkv_status_name(BKV_CANCELLED), "CANCELLED") == 0);
  CHECK(strcmp(bkv_status_name(BKV_VAULT_PASSWORD_CHANGE_UNKNOWN),
               "VAULT_PASSWORD_CHANGE_UNKNOWN") == 0);
  bkv_string_free(before);
  bkv_string_free(after);
  bkv_cancel_free(cancel);
  bkv_cancel_free(rcancel);
}

/* The repository (format v2) through the C ABI: two snapshots, the second
 * deduplicated, restore, a cancelled backup that leaves both intact, forget,
 * prune and check. */
static void repository(const char* dir, const char* path, bkv_key* key) {
  char url[300], target[300], cmd[800], state[300];
  char* err = NULL;
  snprintf(url, sizeof url, "file://%s/repo", dir);
  snprintf(state, sizeof state, "%s/state", dir);
  bkv_store* store = NULL;
  CHECK(bkv_store_open(url, &store, &err) == BKV_OK);
  bkv_repo* repo = NULL;
  bkv_repo_options ro = {0, state};
  CHECK(bkv_repo_open(store, key, &ro, &repo, &err) == BKV_NOT_FOUND);
  bkv_error_free(err);
  err = NULL;
  ro.create = 1;
  CHECK(bkv_repo_open(store, key, &ro, &repo, &err) == BKV_OK);
  uint64_t uploaded = 0;
  bkv_repo_backup_options bo = {progress, &uploaded, NULL};
  bkv_repo_stats st;
  char* first = NULL;
  CHECK(bkv_repo_backup(repo, path, &bo, &first, &st, &err) == BKV_OK);
  CHECK(uploaded > 0 && st.new_bytes > 0 && st.dedup_bytes == 0);
  char* second = NULL;
  CHECK(bkv_repo_backup(repo, path, NULL, &second, &st, &err) == BKV_OK);
  CHECK(st.new_bytes == 0 && st.bytes > 0);

  bkv_cancel* cancel = NULL;
  CHECK(bkv_cancel_new(&cancel, NULL) == BKV_OK);
  bkv_cancel_request(cancel);
  bo.cancel = cancel;
  CHECK(bkv_repo_backup(repo, path, &bo, NULL, NULL, &err) == BKV_CANCELLED);
  bkv_error_free(err);
  err = NULL;

  bkv_snapshot* snaps = NULL;
  size_t n = 0;
  CHECK(bkv_repo_snapshots(repo, NULL, &snaps, &n, &err) == BKV_OK);
  CHECK(n == 2 && snaps != NULL && strcmp(snaps[1].id, second) == 0 &&
        strcmp(snaps[0].source, path) == 0);
  bkv_snapshots_free(snaps, n);

  snprintf(target, sizeof target, "%s/repo-restored.txt", dir);
  CHECK(bkv_repo_restore(repo, first, NULL, target, NULL, &err) == BKV_OK);
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, target);
  CHECK(system(cmd) == 0);

  size_t forgotten = 0;
  CHECK(bkv_repo_forget(repo, 1, NULL, &forgotten, &err) == BKV_OK);
  CHECK(forgotten == 1);
  CHECK(bkv_repo_prune(repo, NULL, NULL, &err) == BKV_OK);
  char* report = NULL;
  CHECK(bkv_repo_check(repo, 1, NULL, &report, &err) == BKV_OK);
  CHECK(report != NULL && report[0] == '\0');
  bkv_string_free(report);
  CHECK(count_files(state));
  bkv_string_free(first);
  bkv_string_free(second);
  bkv_cancel_free(cancel);
  bkv_repo_free(repo);
  bkv_store_free(store);
}

/* A repository written before config version 4 (tests/vectors/repo-v2,
 * keyed SHA-512 chunk ids) checks clean with every byte read through the C
 * ABI: the ids are recomputed with the function its config implies. */
static void old_repository(const char* dir) {
  const char* src = getenv("BKV_SOURCE_DIR");
  char cmd[1200], url[300], text[200] = {0};
  char* err = NULL;
  if (src == NULL) {
    fprintf(stderr, "BKV_SOURCE_DIR is not set\n");
    ++failures;
    return;
  }
  snprintf(cmd, sizeof cmd, "cp -r '%s/tests/vectors/repo-v2/store' '%s/old'",
           src, dir);
  CHECK(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "%s/tests/vectors/repo-v2/key", src);
  FILE* f = fopen(cmd, "r");
  CHECK(f != NULL);
  if (f == NULL) return;
  size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) --len;
  bkv_key* key = NULL;
  CHECK(bkv_key_parse(text, len, &key, &err) == BKV_OK);
  snprintf(url, sizeof url, "file://%s/old", dir);
  bkv_store* store = NULL;
  CHECK(bkv_store_open(url, &store, &err) == BKV_OK);
  bkv_repo* repo = NULL;
  bkv_repo_options ro = {0, NULL};
  CHECK(bkv_repo_open(store, key, &ro, &repo, &err) == BKV_OK);
  char* report = NULL;
  CHECK(bkv_repo_check(repo, 1, NULL, &report, &err) == BKV_OK);
  CHECK(report != NULL && report[0] == '\0');
  if (report != NULL && report[0] != '\0') fprintf(stderr, "%s\n", report);
  bkv_string_free(report);
  bkv_repo_free(repo);
  bkv_store_free(store);
  bkv_key_free(key);
}

/* Key slots through the C ABI (issue 17): the app hands over a passkey's
 * PRF output; the set (made with `key` by repository()) migrates, opens by
 * the passkey, refuses another credential and another output, rotates the
 * salt, and opens by it no more once the slot is removed. */
static int same_key(const bkv_key* a, const bkv_key* b) {
  char *ta = NULL, *tb = NULL;
  int same = bkv_key_format(a, &ta, NULL) == BKV_OK &&
             bkv_key_format(b, &tb, NULL) == BKV_OK && strcmp(ta, tb) == 0;
  bkv_string_free(ta);
  bkv_string_free(tb);
  return same;
}

static void passkey_slots(const char* dir, bkv_key* key) {
  char url[300];
  char* err = NULL;
  snprintf(url, sizeof url, "file://%s/repo", dir);
  bkv_store* store = NULL;
  CHECK(bkv_store_open(url, &store, &err) == BKV_OK);
  bkv_slot_secret *rk = NULL, *pk = NULL, *other = NULL, *wrong = NULL;
  CHECK(bkv_slot_secret_recovery_key(key, &rk, &err) == BKV_OK);
  const uint8_t cred[4] = {1, 2, 3, 4}, cred2[4] = {9, 9, 9, 9};
  uint8_t salt[32], out1[32], out2[32], id[16];
  memset(out1, 0x11, sizeof out1);
  memset(out2, 0x22, sizeof out2);
  CHECK(bkv_random_salt(salt, &err) == BKV_OK);
  CHECK(bkv_slots_add_passkey(store, rk, "localhost", cred, 4, salt, out1, id,
                              &err) == BKV_OK);
  bkv_passkey_slot* slots = NULL;
  size_t n = 0;
  CHECK(bkv_slots_passkeys(store, &slots, &n, &err) == BKV_OK);
  CHECK(n == 1 && slots[0].credential_id_len == 4 &&
        memcmp(slots[0].credential_id, cred, 4) == 0 &&
        memcmp(slots[0].salt, salt, 32) == 0 &&
        strcmp(slots[0].rp_id, "localhost") == 0 &&
        memcmp(slots[0].slot_id, id, 16) == 0);
  bkv_passkey_slots_free(slots, n);
  CHECK(bkv_slot_secret_passkey(cred, 4, out1, &pk, &err) == BKV_OK);
  CHECK(bkv_slot_secret_passkey(cred2, 4, out1, &other, &err) == BKV_OK);
  CHECK(bkv_slot_secret_passkey(cred, 4, out2, &wrong, &err) == BKV_OK);
  bkv_key* master = NULL;
  CHECK(bkv_slots_unlock(store, pk, &master, &err) == BKV_OK);
  CHECK(master != NULL && same_key(master, key));
  bkv_key_free(master);
  CHECK(bkv_slots_unlock(store, other, &master, &err) == BKV_NOT_FOUND);
  bkv_error_free(err);
  err = NULL;
  CHECK(bkv_slots_unlock(store, wrong, &master, &err) == BKV_WRONG_KEY);
  bkv_error_free(err);
  err = NULL;
  /* Salt rotation: both outputs from one assertion. */
  uint8_t salt2[32];
  CHECK(bkv_random_salt(salt2, &err) == BKV_OK);
  CHECK(bkv_slots_rotate_passkey_salt(store, pk, salt2, out2, &err) == BKV_OK);
  CHECK(bkv_slots_unlock(store, pk, &master, &err) == BKV_WRONG_KEY);
  bkv_error_free(err);
  err = NULL;
  CHECK(bkv_slots_unlock(store, wrong, &master, &err) == BKV_OK);
  bkv_key_free(master);
  int was_master = -1;
  CHECK(bkv_slots_remove(store, rk, id, &was_master, &err) == BKV_OK);
  CHECK(was_master == 0);
  CHECK(bkv_slots_unlock(store, wrong, &master, &err) == BKV_NOT_FOUND);
  bkv_error_free(err);
  err = NULL;
  /* The migrated key's slot is the last one now: refused. */
  bkv_passkey_slot* none = NULL;
  CHECK(bkv_slots_passkeys(store, &none, &n, &err) == BKV_OK && n == 0);
  bkv_passkey_slots_free(none, n);
  bkv_slot_secret_free(rk);
  bkv_slot_secret_free(pk);
  bkv_slot_secret_free(other);
  bkv_slot_secret_free(wrong);
  bkv_store_free(store);
}

/* Review #7: a key from any slot opens the set through every open path. A
 * recovery-key slot R added to each migrated set (v1 at `v1_url`, the
 * repository at `dir`/repo) is not the master key, yet bkv_list,
 * bkv_restore, bkv_backup and bkv_repo_open take it (and the master key
 * still), and a key of no slot is refused. */
static void open_through_keyring(const char* dir, const char* v1_url,
                                 const char* path, bkv_key* key) {
  char url[300], target[300], cmd[800];
  char* err = NULL;
  bkv_key *r = NULL, *stranger = NULL;
  CHECK(bkv_key_generate(&r, &err) == BKV_OK);
  CHECK(bkv_key_generate(&stranger, &err) == BKV_OK);
  bkv_slot_secret* rk = NULL;
  CHECK(bkv_slot_secret_recovery_key(key, &rk, &err) == BKV_OK);
  uint8_t id[16];

  bkv_store* v1 = NULL;
  CHECK(bkv_store_open(v1_url, &v1, &err) == BKV_OK);
  CHECK(bkv_slots_add_recovery_key(v1, rk, r, id, &err) == BKV_OK);
  char* ids = NULL;
  CHECK(bkv_list(v1, r, &ids, &err) == BKV_OK);
  bkv_string_free(ids);
  CHECK(bkv_backup(v1, r, path, NULL, NULL, &err) == BKV_OK);
  snprintf(target, sizeof target, "%s/via-slot.txt", dir);
  CHECK(bkv_restore(v1, r, NULL, target, NULL, &err) == BKV_OK);
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, target);
  CHECK(system(cmd) == 0);
  snprintf(target, sizeof target, "%s/via-master.txt", dir);
  CHECK(bkv_restore(v1, key, NULL, target, NULL, &err) == BKV_OK);
  snprintf(target, sizeof target, "%s/via-stranger.txt", dir);
  CHECK(bkv_restore(v1, stranger, NULL, target, NULL, &err) == BKV_WRONG_KEY);
  CHECK(err != NULL && strstr(err, "recovery-key or vault slots") != NULL);
  CHECK(access(target, F_OK) != 0);
  bkv_error_free(err);
  err = NULL;
  bkv_store_free(v1);

  snprintf(url, sizeof url, "file://%s/repo", dir);
  bkv_store* store = NULL;
  CHECK(bkv_store_open(url, &store, &err) == BKV_OK);
  CHECK(bkv_slots_add_recovery_key(store, rk, r, id, &err) == BKV_OK);
  bkv_repo_options ro = {0, NULL};
  bkv_repo* repo = NULL;
  CHECK(bkv_repo_open(store, r, &ro, &repo, &err) == BKV_OK);
  snprintf(target, sizeof target, "%s/repo-via-slot.txt", dir);
  CHECK(repo != NULL &&
        bkv_repo_restore(repo, NULL, NULL, target, NULL, &err) == BKV_OK);
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, target);
  CHECK(system(cmd) == 0);
  bkv_repo_free(repo);
  repo = NULL;
  CHECK(bkv_repo_open(store, key, &ro, &repo, &err) == BKV_OK);
  bkv_repo_free(repo);
  repo = NULL;
  CHECK(bkv_repo_open(store, stranger, &ro, &repo, &err) == BKV_WRONG_KEY);
  CHECK(repo == NULL);
  bkv_error_free(err);
  bkv_store_free(store);
  bkv_slot_secret_free(rk);
  bkv_key_free(r);
  bkv_key_free(stranger);
}

int main(void) {
  char dir[] = "/tmp/bkv-c-abi-XXXXXX";
  if (mkdtemp(dir) == NULL) return 2;
  char path[256], url[300], target[256], cmd[1200];
  char* err = NULL;

  /* Keys. */
  bkv_key* key = NULL;
  CHECK(bkv_key_generate(&key, &err) == BKV_OK);
  char* text = NULL;
  CHECK(bkv_key_format(key, &text, &err) == BKV_OK);
  CHECK(text != NULL && strlen(text) == 79);
  bkv_key* parsed = NULL;
  CHECK(bkv_key_parse(text, strlen(text), &parsed, &err) == BKV_OK);
  bkv_key* bad = NULL;
  CHECK(bkv_key_parse("12zz", 4, &bad, &err) == BKV_INVALID_ARGUMENT);
  CHECK(err != NULL && strstr(err, "position 3") != NULL);
  CHECK(bad == NULL);
  bkv_error_free(err);
  err = NULL;

  /* A store and a file. */
  snprintf(url, sizeof url, "file://%s/store", dir);
  bkv_store* store = NULL;
  CHECK(bkv_store_open(url, &store, &err) == BKV_OK);
  snprintf(path, sizeof path, "%s/chat.txt", dir);
  FILE* f = fopen(path, "w");
  for (int i = 0; i < 10000; ++i) fprintf(f, "message %d\n", i);
  fclose(f);

  bkv_backup_options opts;
  bkv_backup_options_init(&opts);
  uint64_t seen = 0;
  opts.progress = progress;
  opts.progress_ctx = &seen;
  char* id = NULL;
  CHECK(bkv_backup(store, parsed, path, &opts, &id, &err) == BKV_OK);
  CHECK(id != NULL && strlen(id) == 32);
  CHECK(seen > 0);

  char* ids = NULL;
  CHECK(bkv_list(store, key, &ids, &err) == BKV_OK);
  CHECK(ids != NULL && strncmp(ids, id, 32) == 0);
  bkv_string_free(ids);

  snprintf(target, sizeof target, "%s/restored.txt", dir);
  CHECK(bkv_restore(store, key, id, target, NULL, &err) == BKV_OK);
  snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, target);
  CHECK(system(cmd) == 0);
  CHECK(bkv_restore(store, key, NULL, target, NULL, &err) ==
        BKV_ALREADY_EXISTS);
  bkv_error_free(err);
  err = NULL;

  /* A different key cannot open the set. */
  bkv_key* other = NULL;
  CHECK(bkv_key_generate(&other, NULL) == BKV_OK);
  snprintf(target, sizeof target, "%s/other.txt", dir);
  CHECK(bkv_restore(store, other, NULL, target, NULL, &err) == BKV_WRONG_KEY);
  CHECK(err != NULL && strstr(err, "wrong backup key") != NULL);
  CHECK(access(target, F_OK) != 0);
  bkv_error_free(err);
  err = NULL;

  callback_store(dir, path, key);
  cancellation(dir, store, key);
  repository(dir, path, key);
  old_repository(dir);
  passkey_slots(dir, key);
  open_through_keyring(dir, url, path, key);
  CHECK(strncmp(bkv_version(), "0.", 2) == 0 && BKV_VERSION_MAJOR == 0);

  CHECK(bkv_store_open("ftp://nope", &store, NULL) == BKV_INVALID_ARGUMENT);
  CHECK(strcmp(bkv_status_name(BKV_CORRUPTED), "CORRUPTED") == 0);

  bkv_string_free(id);
  bkv_string_free(text);
  bkv_key_free(key);
  bkv_key_free(parsed);
  bkv_key_free(other);
  bkv_store_free(store);
  bkv_key_free(NULL);
  bkv_store_free(NULL);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) return 2;
  if (failures == 0) printf("c_abi_test: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
