/* Exercises the vault calls of the C ABI from C against a real bkv-vault
 * (started by c_abi_vault_runner.cc with --attempt-limit 3), which passes it
 * in BKV_TEST_VAULT_ADDR, BKV_TEST_VAULT_KEY (hex), BKV_TEST_VAULT_TOKEN and
 * BKV_TEST_VAULT_ACCOUNT. Exits non-zero on the first failed check's run. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
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

/* Checks that `err` holds a message containing `needle`, then frees it. */
#define CHECK_ERR(err, needle)                                    \
  do {                                                            \
    CHECK((err) != NULL && strstr((err), (needle)) != NULL);      \
    if ((err) != NULL) fprintf(stderr, "  (error: %s)\n", (err)); \
    bkv_error_free(err);                                          \
    (err) = NULL;                                                 \
  } while (0)

static const char* env(const char* name) {
  const char* v = getenv(name);
  if (v == NULL || v[0] == '\0') {
    fprintf(stderr,
            "c_abi_vault_test: %s is not set (run it through "
            "c_abi_vault_runner)\n",
            name);
    exit(2);
  }
  return v;
}

/* Waits (up to 5 s) until the process is in `state` ('T': stopped); a
 * signal takes effect asynchronously. */
static int wait_state(pid_t pid, char state) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  for (int i = 0; i < 500; ++i) {
    char line[512] = "";
    FILE* f = fopen(path, "r");
    if (f == NULL) return 0;
    const int got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    const char* end = strrchr(line, ')'); /* "pid (comm) S ..." */
    if (got && end != NULL && end[1] == ' ' && end[2] == state) return 1;
    usleep(10 * 1000);
  }
  return 0;
}

struct status_call {
  bkv_vault* vault;
  bkv_cancel* cancel;
  bkv_status result;
};

static void* status_thread(void* arg) {
  struct status_call* c = arg;
  bkv_vault_state state;
  c->result =
      bkv_vault_status(c->vault, &state, NULL, NULL, c->cancel, NULL, NULL);
  return NULL;
}

/* A pre-cancelled recovery spends no attempt; a call waiting on a vault
 * that does not answer (SIGSTOP) returns BKV_CANCELLED when another thread
 * cancels it, instead of waiting out its deadline. */
static void cancellation(bkv_vault* vault, const char* account,
                         const char* password, size_t password_len,
                         pid_t vault_pid) {
  bkv_cancel* cancel = NULL;
  CHECK(bkv_cancel_new(&cancel, NULL) == BKV_OK);
  bkv_cancel_request(cancel);
  bkv_key* got = NULL;
  bkv_vault_error detail;
  char* err = NULL;
  uint32_t before = 0, after = 0;
  bkv_vault_state state;
  CHECK(bkv_vault_status(vault, &state, &before, NULL, NULL, NULL, NULL) ==
        BKV_OK);
  CHECK(bkv_vault_recover(vault, account, password, password_len, &got, cancel,
                          &detail, &err) == BKV_CANCELLED);
  CHECK(got == NULL && detail.attempt == BKV_VAULT_ATTEMPT_NOT_SPENT &&
        detail.retry_safe);
  CHECK_ERR(err, "cancelled");
  CHECK(bkv_vault_status(vault, &state, &after, NULL, NULL, NULL, NULL) ==
        BKV_OK);
  CHECK(state == BKV_VAULT_STATE_ACTIVE && after == before);
  bkv_cancel_free(cancel);

  struct status_call call = {vault, NULL, BKV_OK};
  CHECK(bkv_cancel_new(&call.cancel, NULL) == BKV_OK);
  CHECK(kill(vault_pid, SIGSTOP) == 0);
  CHECK(wait_state(vault_pid, 'T'));
  pthread_t t;
  CHECK(pthread_create(&t, NULL, status_thread, &call) == 0);
  usleep(300 * 1000); /* let the RPC reach the stopped vault */
  bkv_cancel_request(call.cancel);
  pthread_join(t, NULL);
  CHECK(kill(vault_pid, SIGCONT) == 0);
  if (call.result != BKV_CANCELLED) {
    fprintf(stderr, "  status during SIGSTOP: %s\n",
            bkv_status_name(call.result));
  }
  CHECK(call.result == BKV_CANCELLED);
  bkv_cancel_free(call.cancel);
}

static void fast_argon2(bkv_vault_options* o) {
  o->argon2_iterations = 2;
  o->argon2_memory_kib = 19456;
  o->argon2_parallelism = 1;
}

int main(void) {
  const char* addr = env("BKV_TEST_VAULT_ADDR");
  const char* key_hex = env("BKV_TEST_VAULT_KEY");
  const char* token = env("BKV_TEST_VAULT_TOKEN");
  const char* account = env("BKV_TEST_VAULT_ACCOUNT");
  char* err = NULL;
  bkv_vault_error detail;
  bkv_vault_state state;
  uint32_t remaining = 99, limit = 99;

  /* Bad options: refused before anything is contacted. */
  bkv_vault_options opts;
  bkv_vault_options_init(&opts);
  CHECK(opts.address == NULL && opts.timeout_ms == 0);
  opts.address = addr;
  opts.server_public_key = "12zz";
  opts.account_token = token;
  fast_argon2(&opts);
  bkv_vault* vault = NULL;
  CHECK(bkv_vault_open(&opts, &vault, &err) == BKV_INVALID_ARGUMENT);
  CHECK(vault == NULL);
  CHECK_ERR(err, "64 hex digits");
  opts.server_public_key = key_hex;
  opts.address = NULL;
  CHECK(bkv_vault_open(&opts, &vault, &err) == BKV_INVALID_ARGUMENT);
  CHECK_ERR(err, "address");
  opts.address = addr;
  opts.argon2_memory_kib = 1024;
  CHECK(bkv_vault_open(&opts, &vault, &err) == BKV_INVALID_ARGUMENT);
  CHECK_ERR(err, "below the configured minimum");
  CHECK(bkv_vault_open(NULL, &vault, NULL) == BKV_INVALID_ARGUMENT);
  CHECK(vault == NULL);

  /* Nothing listening: a transient failure, to retry later. */
  fast_argon2(&opts);
  opts.address = "127.0.0.1:1";
  opts.timeout_ms = 5000;
  CHECK(bkv_vault_open(&opts, &vault, &err) == BKV_OK);
  CHECK(bkv_vault_status(vault, &state, NULL, NULL, NULL, &detail, &err) ==
        BKV_UNAVAILABLE);
  CHECK_ERR(err, "");
  bkv_vault_free(vault);
  vault = NULL;
  opts.address = addr;

  /* No token yet: the vault refuses; a token set later is used. */
  opts.account_token = NULL;
  opts.timeout_ms = 20000;
  opts.max_retry_wait_ms = 10000; /* wait out a rate limit, if any */
  CHECK(bkv_vault_open(&opts, &vault, &err) == BKV_OK);
  CHECK(vault != NULL);
  CHECK(bkv_vault_status(vault, &state, NULL, NULL, NULL, NULL, &err) ==
        BKV_VAULT_UNAUTHENTICATED);
  CHECK_ERR(err, "");
  CHECK(bkv_vault_set_token(vault, token, &err) == BKV_OK);
  CHECK(bkv_vault_status(vault, &state, &remaining, &limit, NULL, &detail,
                         &err) == BKV_OK);
  CHECK(state == BKV_VAULT_STATE_NONE);

  /* Nothing registered: recovery spends nothing and says so. */
  bkv_key* got = NULL;
  CHECK(bkv_vault_recover(vault, account, "pw", 2, &got, NULL, &detail, &err) ==
        BKV_VAULT_NOT_REGISTERED);
  CHECK(got == NULL);
  CHECK_ERR(err, "no backup key");

  /* Register; the password is `len` bytes, not NUL-terminated text. */
  bkv_key* key = NULL;
  CHECK(bkv_key_generate(&key, &err) == BKV_OK);
  const char password[] = "correct horse XYZ";
  const size_t password_len = 13; /* "correct horse" */
  CHECK(bkv_vault_register(vault, account, password, password_len, key, NULL,
                           &detail, &err) == BKV_OK);
  CHECK(detail.attempts_remaining == 0 && detail.retry_after_ms == 0);
  CHECK(bkv_vault_status(vault, &state, &remaining, &limit, NULL, NULL, &err) ==
        BKV_OK);
  CHECK(state == BKV_VAULT_STATE_ACTIVE);
  CHECK(remaining == 3 && limit == 3);

  /* The right password gives the same key back. */
  const char same[13] = {'c', 'o', 'r', 'r', 'e', 'c', 't',
                         ' ', 'h', 'o', 'r', 's', 'e'};
  CHECK(bkv_vault_recover(vault, account, same, sizeof same, &got, NULL,
                          &detail, &err) == BKV_OK);
  CHECK(got != NULL);
  char* want_text = NULL;
  char* got_text = NULL;
  CHECK(bkv_key_format(key, &want_text, &err) == BKV_OK);
  if (got != NULL) CHECK(bkv_key_format(got, &got_text, &err) == BKV_OK);
  CHECK(want_text != NULL && got_text != NULL &&
        strcmp(want_text, got_text) == 0);
  bkv_string_free(got_text);
  bkv_key_free(got);
  got = NULL;

  /* The record's identity; no reset pending. */
  uint64_t registration_id = 0;
  int64_t due = -1;
  CHECK(bkv_vault_registration(vault, &registration_id, &due, NULL, NULL,
                               &err) == BKV_OK);
  CHECK(registration_id != 0 && due == 0);

  /* A vault configured differently is a configuration error that spends
   * nothing (checked with GetVaultInfo before any counted call). */
  bkv_vault_options other = opts;
  other.opaque_context = "another deployment";
  bkv_vault* misconfigured = NULL;
  CHECK(bkv_vault_open(&other, &misconfigured, &err) == BKV_OK);
  CHECK(bkv_vault_recover(misconfigured, account, same, sizeof same, &got, NULL,
                          &detail, &err) == BKV_VAULT_CONFIG);
  CHECK(detail.attempt == BKV_VAULT_ATTEMPT_NOT_SPENT);
  CHECK_ERR(err, "OPAQUE context");
  bkv_vault_free(misconfigured);
  other = opts;
  other.server_identity = "vault.example";
  CHECK(bkv_vault_open(&other, &misconfigured, &err) == BKV_OK);
  CHECK(bkv_vault_recover(misconfigured, account, same, sizeof same, &got, NULL,
                          &detail, &err) == BKV_VAULT_CONFIG);
  CHECK_ERR(err, "server identity");
  bkv_vault_free(misconfigured);
  CHECK(bkv_vault_status(vault, &state, &remaining, &limit, NULL, NULL, &err) ==
        BKV_OK);
  CHECK(remaining == 3);

  /* Plaintext to a non-loopback address needs the explicit option (no call
   * is made by bkv_vault_open). */
  other = opts;
  other.address = "192.0.2.1:443";
  CHECK(bkv_vault_open(&other, &misconfigured, &err) == BKV_INVALID_ARGUMENT);
  CHECK_ERR(err, "TLS is required");
  other.insecure_plaintext = 1;
  CHECK(bkv_vault_open(&other, &misconfigured, &err) == BKV_OK);
  bkv_vault_free(misconfigured);
  misconfigured = NULL;

  /* Replacing an active record needs the password: change it (and back). */
  CHECK(bkv_vault_register(vault, account, "evil", 4, key, NULL, &detail,
                           &err) == BKV_VAULT_PROOF_REQUIRED);
  CHECK_ERR(err, "");
  uint32_t new_limit = 0;
  CHECK(bkv_vault_change_password(vault, account, same, sizeof same, "new pw",
                                  6, &new_limit, NULL, &detail,
                                  &err) == BKV_OK);
  CHECK(new_limit == 3);
  CHECK(bkv_vault_recover(vault, account, "new pw", 6, &got, NULL, &detail,
                          &err) == BKV_OK);
  bkv_key_free(got);
  got = NULL;
  CHECK(bkv_vault_change_password(vault, account, "new pw", 6, same,
                                  sizeof same, NULL, NULL, &detail,
                                  &err) == BKV_OK);

  /* Wrong passwords count down, then lock. The full buffer (with " XYZ") is
   * a different password. */
  CHECK(bkv_vault_recover(vault, account, password, strlen(password), &got,
                          NULL, &detail, &err) == BKV_VAULT_INVALID_PASSWORD);
  CHECK(detail.attempts_remaining == 2);
  CHECK(got == NULL);
  CHECK_ERR(err, "2 attempts remaining");
  CHECK(bkv_vault_recover(vault, account, "wrong", 5, &got, NULL, &detail,
                          &err) == BKV_VAULT_INVALID_PASSWORD);
  CHECK(detail.attempts_remaining == 1);
  CHECK_ERR(err, "1 attempts remaining");
  CHECK(bkv_vault_recover(vault, account, "wrong", 5, &got, NULL, &detail,
                          &err) == BKV_VAULT_LOCKED);
  CHECK_ERR(err, "locked");
  /* Locked for good: the right password no longer helps. */
  CHECK(bkv_vault_recover(vault, account, same, sizeof same, &got, NULL,
                          &detail, &err) == BKV_VAULT_LOCKED);
  CHECK(got == NULL);
  CHECK_ERR(err, "destroyed");
  CHECK(bkv_vault_status(vault, &state, &remaining, &limit, NULL, NULL, &err) ==
        BKV_OK);
  CHECK(state == BKV_VAULT_STATE_LOCKED);
  CHECK(remaining == 0 && limit == 3);
  CHECK(bkv_vault_register(vault, account, same, sizeof same, key, NULL, NULL,
                           &err) == BKV_VAULT_LOCKED);
  CHECK_ERR(err, "Delete the record");

  /* Delete (idempotent), then a fresh registration works again. */
  CHECK(bkv_vault_delete(vault, NULL, &detail, &err) == BKV_OK);
  CHECK(bkv_vault_status(vault, &state, NULL, NULL, NULL, NULL, &err) ==
        BKV_OK);
  CHECK(state == BKV_VAULT_STATE_NONE);
  CHECK(bkv_vault_delete(vault, NULL, NULL, &err) == BKV_OK);
  CHECK(bkv_vault_register(vault, account, same, sizeof same, key, NULL, NULL,
                           &err) == BKV_OK);
  /* An active record is deleted with its password, not without. */
  CHECK(bkv_vault_delete(vault, NULL, &detail, &err) ==
        BKV_VAULT_PROOF_REQUIRED);
  CHECK_ERR(err, "");
  CHECK(bkv_vault_request_reset(vault, &due, NULL, &detail, &err) == BKV_OK);
  CHECK(due > 0);
  CHECK(bkv_vault_registration(vault, &registration_id, &due, NULL, NULL,
                               &err) == BKV_OK);
  CHECK(due > 0);
  CHECK(bkv_vault_delete_with_password(vault, account, same, sizeof same, NULL,
                                       &detail, &err) == BKV_OK);
  CHECK(bkv_vault_status(vault, &state, NULL, NULL, NULL, NULL, &err) ==
        BKV_OK);
  CHECK(state == BKV_VAULT_STATE_NONE);

  CHECK(bkv_vault_register(vault, account, same, sizeof same, key, NULL, NULL,
                           &err) == BKV_OK);
  cancellation(vault, account, same, sizeof same,
               (pid_t)atoi(env("BKV_TEST_VAULT_PID")));

  /* A refused token is typed so the app knows to fetch a new one. */
  CHECK(bkv_vault_set_token(vault, "not-a-token", &err) == BKV_OK);
  CHECK(bkv_vault_delete(vault, NULL, &detail, &err) ==
        BKV_VAULT_UNAUTHENTICATED);
  CHECK_ERR(err, "");

  /* NULL arguments are refused with a message, never a crash. */
  CHECK(bkv_vault_recover(vault, account, NULL, 0, &got, NULL, NULL, &err) ==
        BKV_INVALID_ARGUMENT);
  CHECK_ERR(err, "must not be NULL");
  CHECK(bkv_vault_status(NULL, &state, NULL, NULL, NULL, NULL, NULL) ==
        BKV_INVALID_ARGUMENT);
  CHECK(bkv_vault_set_token(vault, NULL, NULL) == BKV_INVALID_ARGUMENT);

  CHECK(strcmp(bkv_status_name(BKV_VAULT_LOCKED), "VAULT_LOCKED") == 0);
  CHECK(strcmp(bkv_status_name(BKV_VAULT_UNAUTHENTICATED),
               "VAULT_UNAUTHENTICATED") == 0);
  CHECK(strcmp(bkv_status_name(BKV_VAULT_CONFIG), "VAULT_CONFIG") == 0);
  CHECK(strcmp(bkv_status_name(BKV_VAULT_PROOF_REQUIRED),
               "VAULT_PROOF_REQUIRED") == 0);
  CHECK(err == NULL);

  bkv_string_free(want_text);
  bkv_key_free(key);
  bkv_vault_free(vault);
  bkv_vault_free(NULL);
  if (failures == 0) printf("c_abi_vault_test: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
