/* A backup/restore round trip through the C ABI, as an app does it:
 *   backup_restore_c FILE WORKDIR
 * makes a key, backs FILE up to the file store WORKDIR/store, restores it
 * to WORKDIR/restored and compares the bytes. Exit status 0 when equal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bkv/bkv.h>

static int fail(const char* what, bkv_status s, char* err) {
  fprintf(stderr, "%s: %s: %s\n", what, bkv_status_name(s),
          err != NULL ? err : "");
  bkv_error_free(err);
  return 1;
}

static int same_bytes(const char* a, const char* b) {
  FILE* fa = fopen(a, "rb");
  FILE* fb = fopen(b, "rb");
  int same = fa != NULL && fb != NULL;
  while (same) {
    int ca = fgetc(fa), cb = fgetc(fb);
    if (ca != cb) same = 0;
    if (ca == EOF || cb == EOF) break;
  }
  if (fa != NULL) fclose(fa);
  if (fb != NULL) fclose(fb);
  return same;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s FILE WORKDIR\n", argv[0]);
    return 2;
  }
  char url[4200], target[4200];
  snprintf(url, sizeof url, "file://%s/store", argv[2]);
  snprintf(target, sizeof target, "%s/restored", argv[2]);
  printf("libbkv %s (built against %d.%d.%d)\n", bkv_version(),
         BKV_VERSION_MAJOR, BKV_VERSION_MINOR, BKV_VERSION_PATCH);

  char* err = NULL;
  bkv_key* key = NULL;
  bkv_store* store = NULL;
  char* id = NULL;
  bkv_status s = bkv_key_generate(&key, &err);
  if (s != BKV_OK) return fail("key", s, err);
  s = bkv_store_open(url, &store, &err);
  if (s != BKV_OK) return fail("store", s, err);
  s = bkv_backup(store, key, argv[1], NULL, &id, &err);
  if (s != BKV_OK) return fail("backup", s, err);
  s = bkv_restore(store, key, id, target, NULL, &err);
  if (s != BKV_OK) return fail("restore", s, err);
  const int ok = same_bytes(argv[1], target);
  printf("backup %s restored %s\n", id, ok ? "byte for byte" : "WRONG");
  bkv_string_free(id);
  bkv_store_free(store);
  bkv_key_free(key);
  return ok ? 0 : 1;
}
