/* Review #7 from C: a phone opens a set through its vault slot. Run by
 * slot.SlotTest.PhoneOpensThroughItsVaultSlotWithTheCAbi, which migrated the
 * set (master: a 64-digit key) and added a vault slot, and passes
 * BKV_TEST_VAULT_ADDR, _KEY (hex), _TOKEN, _ACCOUNT, _PASSWORD,
 * BKV_TEST_STORE (URL), BKV_TEST_SOURCE (the tree backed up) and
 * BKV_TEST_TARGET (where to restore). The released secret is the slot's,
 * not the master key: bkv_repo_open must unwrap the master itself.
 * With BKV_TEST_EXPECT_OPEN (a status name, e.g. CORRUPTED), bkv_repo_open
 * must fail with that status instead (review finding 11: a store whose
 * vault slot the released secret no longer opens). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bkv/bkv.h"

static const char* env(const char* name) {
  const char* v = getenv(name);
  if (v == NULL || v[0] == '\0') {
    fprintf(stderr, "c_abi_slot_vault_test: %s is not set\n", name);
    exit(2);
  }
  return v;
}

static int fail(const char* what, bkv_status s, char* err) {
  fprintf(stderr, "c_abi_slot_vault_test: %s: %s (%s)\n", what,
          bkv_status_name(s), err ? err : "");
  bkv_error_free(err);
  return 1;
}

int main(void) {
  bkv_vault_options vo;
  bkv_vault_options_init(&vo);
  vo.address = env("BKV_TEST_VAULT_ADDR");
  vo.server_public_key = env("BKV_TEST_VAULT_KEY");
  vo.account_token = env("BKV_TEST_VAULT_TOKEN");
  const char* password = env("BKV_TEST_VAULT_PASSWORD");
  char* err = NULL;
  bkv_vault* vault = NULL;
  bkv_status s = bkv_vault_open(&vo, &vault, &err);
  if (s != BKV_OK) return fail("bkv_vault_open", s, err);
  bkv_key* released = NULL;
  s = bkv_vault_recover(vault, env("BKV_TEST_VAULT_ACCOUNT"), password,
                        strlen(password), &released, NULL, NULL, &err);
  bkv_vault_free(vault);
  if (s != BKV_OK) return fail("bkv_vault_recover", s, err);
  bkv_store* store = NULL;
  s = bkv_store_open(env("BKV_TEST_STORE"), &store, &err);
  if (s != BKV_OK) return fail("bkv_store_open", s, err);
  bkv_repo* repo = NULL;
  const bkv_repo_options ro = {0, NULL};
  s = bkv_repo_open(store, released, &ro, &repo, &err);
  bkv_key_free(released);
  const char* expect = getenv("BKV_TEST_EXPECT_OPEN");
  if (expect != NULL && expect[0] != '\0') {
    bkv_repo_free(repo);
    bkv_store_free(store);
    if (strcmp(bkv_status_name(s), expect) != 0) {
      return fail("bkv_repo_open: another status than BKV_TEST_EXPECT_OPEN", s,
                  err);
    }
    printf("c_abi_slot_vault_test: refused as expected: %s\n", err ? err : "");
    bkv_error_free(err);
    return 0;
  }
  if (s != BKV_OK) return fail("bkv_repo_open with the vault's secret", s, err);
  s = bkv_repo_restore(repo, NULL, NULL, env("BKV_TEST_TARGET"), NULL, &err);
  bkv_repo_free(repo);
  bkv_store_free(store);
  if (s != BKV_OK) return fail("bkv_repo_restore", s, err);
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "diff -r '%s' '%s'", env("BKV_TEST_SOURCE"),
           env("BKV_TEST_TARGET"));
  if (system(cmd) != 0) return fail("restored tree differs", BKV_OK, NULL);
  printf("c_abi_slot_vault_test: restored through the vault slot\n");
  return 0;
}
