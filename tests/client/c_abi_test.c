/* Exercises the C ABI from C: keys, a file store, backup, list, restore and
 * the error paths. Exits non-zero on the first failed check. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkv/bkv.h"

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
  CHECK(bkv_restore(store, key, id, target, NULL, NULL, &err) == BKV_OK);
  snprintf(cmd, sizeof cmd, "cmp -s %s %s", path, target);
  CHECK(system(cmd) == 0);
  CHECK(bkv_restore(store, key, NULL, target, NULL, NULL, &err) ==
        BKV_ALREADY_EXISTS);
  bkv_error_free(err);
  err = NULL;

  /* A different key cannot open the set. */
  bkv_key* other = NULL;
  CHECK(bkv_key_generate(&other, NULL) == BKV_OK);
  snprintf(target, sizeof target, "%s/other.txt", dir);
  CHECK(bkv_restore(store, other, NULL, target, NULL, NULL, &err) ==
        BKV_WRONG_KEY);
  CHECK(err != NULL && strstr(err, "wrong backup key") != NULL);
  CHECK(access(target, F_OK) != 0);
  bkv_error_free(err);
  err = NULL;

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
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) return 2;
  if (failures == 0) printf("c_abi_test: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
