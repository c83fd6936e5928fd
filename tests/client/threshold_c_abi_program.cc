// Drives bkv_realms_* (bkv.h) against realms a test started; linked only
// against libbkv.so (the SDK's C ABI), run by threshold_client_test.
//   threshold_c_abi_program SET_FILE ACCOUNT TOKEN_FILE...
//   threshold_c_abi_program --migrate OLD_SET NEW_SET ACCOUNT STATE_DIR
//                           TOKEN_A TOKEN_B TOKEN_C TOKEN_D
//     (old set realm-a,b,c; new set realm-a,b,d)
// Exits 0 when every check holds; prints the first failure otherwise.
//   threshold_c_abi_program --change SET_FILE ACCOUNT PASSWORDS TOKEN_FILE...
// One bkv_realms_change_password (PASSWORDS: the old and the new one, a line
// each); exits with the bkv_status it returned.
//   threshold_c_abi_program --expiry SET_FILE ACCOUNT CLOCK_FILE TOKEN_FILE...
// Run under libfaketime reading CLOCK_FILE ("+0"): the handle forgets its
// recovery once 9 minutes passed; the program moves its own clock 10 minutes
// on by writing CLOCK_FILE after the recovery returned (no call in flight).
#include <bkv/bkv.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

int Fail(const char* what, const char* err) {
  std::fprintf(stderr, "threshold_c_abi_program: %s: %s\n", what,
               err ? err : "");
  return 1;
}

std::string Slurp(const char* path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bkv_realms* Open(const char* file, const char* state_dir,
                 const std::vector<std::string>& tokens) {
  std::vector<const char*> ptrs;
  for (const auto& t : tokens) ptrs.push_back(t.c_str());
  bkv_realms_options o;
  bkv_realms_options_init(&o);
  o.realm_set_file = file;
  o.account_tokens = ptrs.data();
  o.account_token_count = ptrs.size();
  o.argon2_iterations = 2;
  o.argon2_memory_kib = 19456;
  o.argon2_parallelism = 1;
  o.no_rotation = 1;
  o.state_dir = state_dir;
  bkv_realms* r = nullptr;
  char* err = nullptr;
  if (bkv_realms_open(&o, &r, &err) != BKV_OK) Fail("open", err);
  bkv_error_free(err);
  return r;
}

bool Has(const char* s, const char* what) {
  return s != nullptr && std::strstr(s, what) != nullptr;
}

// --change: which password is in force after a change (rthr finding 2).
int ChangeOnly(int argc, char** argv) {
  std::vector<std::string> tokens;
  for (int i = 5; i < argc; ++i) tokens.push_back(Slurp(argv[i]));
  std::istringstream lines(Slurp(argv[4]));
  std::string old_pw, new_pw;
  std::getline(lines, old_pw);
  std::getline(lines, new_pw);
  // The caller's state directory (BKV_STATE_DIR), shared with its client:
  // a change cut at its Commit is completed by the next call (rthr3).
  bkv_realms* realms = Open(argv[2], std::getenv("BKV_STATE_DIR"), tokens);
  if (realms == nullptr) return 1;
  char* err = nullptr;
  const bkv_status s =
      bkv_realms_change_password(realms, argv[3], old_pw.data(), old_pw.size(),
                                 new_pw.data(), new_pw.size(), nullptr, &err);
  if (err != nullptr) std::fprintf(stderr, "%s\n", err);
  bkv_error_free(err);
  bkv_realms_free(realms);
  return static_cast<int>(s);
}

// --expiry (review of rthr2, finding 8): a recovery 10 minutes old is
// forgotten, so a repair is refused; the handle still works after the jump.
int Expiry(int argc, char** argv) {
  std::vector<std::string> tokens;
  for (int i = 5; i < argc; ++i) tokens.push_back(Slurp(argv[i]));
  bkv_realms* realms = Open(argv[2], nullptr, tokens);
  if (realms == nullptr) return 1;
  const char* account = argv[3];
  const char* pw = "correct horse battery";
  bkv_key* key = nullptr;
  bkv_key* got = nullptr;
  char* err = nullptr;
  bkv_vault_error detail;
  if (bkv_key_generate(&key, &err) != BKV_OK ||
      bkv_realms_register(realms, account, pw, std::strlen(pw), key, nullptr,
                          &err) != BKV_OK ||
      bkv_realms_recover(realms, account, pw, std::strlen(pw), &got, nullptr,
                         &detail, &err) != BKV_OK) {
    return Fail("register and recover", err);
  }
  bkv_key_free(got);
  if (bkv_realms_repair(realms, account, pw, std::strlen(pw), nullptr, &detail,
                        &err) != BKV_OK) {
    return Fail("a repair right after the recovery (nothing to repair)", err);
  }
  const auto before = std::chrono::steady_clock::now();
  std::ofstream(argv[4], std::ios::trunc) << "+600\n";
  if (std::chrono::steady_clock::now() - before < std::chrono::minutes(9)) {
    return Fail("the monotonic clock did not move", "is libfaketime loaded?");
  }
  if (bkv_realms_repair(realms, account, pw, std::strlen(pw), nullptr, &detail,
                        &err) == BKV_OK ||
      !Has(err, "within the last 9 minutes")) {
    return Fail("a repair 10 minutes after the recovery must be refused", err);
  }
  bkv_error_free(err);
  err = nullptr;
  // The realms' deadlines still hold on the moved clock: a new recovery
  // works, and a repair after it again.
  if (bkv_realms_recover(realms, account, pw, std::strlen(pw), &got, nullptr,
                         &detail, &err) != BKV_OK ||
      bkv_realms_repair(realms, account, pw, std::strlen(pw), nullptr, &detail,
                        &err) != BKV_OK) {
    return Fail("recover and repair after the jump", err);
  }
  bkv_key_free(got);
  bkv_key_free(key);
  bkv_realms_free(realms);
  return 0;
}

// bkv_realms_migrate2 (review of rset, finding 9): the swapped handles
// refused (finding 10), then a migration reporting what it did, then a
// second call that resumes.
int Migrate(char** argv) {
  const char* account = argv[4];
  std::vector<std::string> t;
  for (int i = 6; i < 10; ++i) t.push_back(Slurp(argv[i]));
  bkv_realms* old = Open(argv[2], argv[5], {t[0], t[1], t[2]});
  bkv_realms* to = Open(argv[3], argv[5], {t[0], t[1], t[3]});
  if (old == nullptr || to == nullptr) return 1;
  bkv_key* key = nullptr;
  char* err = nullptr;
  const char* pw = "correct horse battery";
  if (bkv_key_generate(&key, &err) != BKV_OK ||
      bkv_realms_register(old, account, pw, std::strlen(pw), key, nullptr,
                          &err) != BKV_OK) {
    return Fail("register", err);
  }
  bkv_realms_migration m;
  bkv_vault_error detail;
  if (bkv_realms_migrate2(old, to, account, pw, std::strlen(pw), &m, &detail,
                          &err) != BKV_VAULT_CONFIG ||
      !Has(err, "look swapped")) {
    return Fail("swapped handles must be refused", err);
  }
  bkv_error_free(err);
  err = nullptr;
  if (bkv_realms_migrate2(to, old, account, pw, std::strlen(pw), &m, &detail,
                          &err) != BKV_OK) {
    return Fail("migrate2", err);
  }
  if (m.resumed != 0 || !Has(m.deleted, "realm-c") || m.not_deleted ||
      m.lagging || m.faults || m.note) {
    return Fail("a migration in one run", m.deleted);
  }
  bkv_realms_migration_free(&m);
  if (bkv_realms_migrate2(to, old, account, pw, std::strlen(pw), &m, &detail,
                          &err) != BKV_OK ||
      m.resumed != 1) {
    return Fail("a second call resumes", err);
  }
  bkv_realms_migration_free(&m);
  bkv_realms_migration_free(&m);  // twice: the strings are NULL now
  bkv_realms_migration_free(nullptr);
  bkv_key* got = nullptr;
  char *a = nullptr, *b = nullptr;
  if (bkv_realms_recover(to, account, pw, std::strlen(pw), &got, nullptr,
                         &detail, &err) != BKV_OK ||
      bkv_key_format(key, &a, &err) != BKV_OK ||
      bkv_key_format(got, &b, &err) != BKV_OK || std::strcmp(a, b) != 0) {
    return Fail("the new set recovers the key", err);
  }
  bkv_string_free(a);
  bkv_string_free(b);
  bkv_key_free(got);
  bkv_key_free(key);
  bkv_realms_free(to);
  bkv_realms_free(old);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 10 && std::strcmp(argv[1], "--migrate") == 0) {
    return Migrate(argv);
  }
  if (argc >= 6 && std::strcmp(argv[1], "--change") == 0) {
    return ChangeOnly(argc, argv);
  }
  if (argc >= 6 && std::strcmp(argv[1], "--expiry") == 0) {
    return Expiry(argc, argv);
  }
  if (argc < 4) return Fail("usage", "SET_FILE ACCOUNT TOKEN_FILE...");
  std::vector<std::string> tokens;
  for (int i = 3; i < argc; ++i) tokens.push_back(Slurp(argv[i]));
  std::vector<const char*> ptrs;
  for (const auto& t : tokens) ptrs.push_back(t.c_str());
  bkv_realms_options o;
  bkv_realms_options_init(&o);
  o.realm_set_file = argv[1];
  o.account_tokens = ptrs.data();
  o.account_token_count = ptrs.size() - 1;  // one short
  bkv_realms* realms = nullptr;
  char* err = nullptr;
  if (bkv_realms_open(&o, &realms, &err) != BKV_INVALID_ARGUMENT) {
    return Fail("a missing token must be refused", err);
  }
  bkv_error_free(err);
  err = nullptr;
  o.account_token_count = ptrs.size();
  o.argon2_iterations = 2;  // the SDK's floor, as in bkv_vault_options
  o.argon2_memory_kib = 19456;
  o.argon2_parallelism = 1;
  o.no_rotation = 1;
  if (bkv_realms_open(&o, &realms, &err) != BKV_OK) return Fail("open", err);
  bkv_key* key = nullptr;
  if (bkv_key_generate(&key, &err) != BKV_OK) return Fail("key", err);
  const char* pw = "correct horse battery";
  if (bkv_realms_register(realms, argv[2], pw, std::strlen(pw), key, nullptr,
                          &err) != BKV_OK) {
    return Fail("register", err);
  }
  bkv_vault_error detail;
  bkv_key* got = nullptr;
  char* faults = nullptr;
  char* repaired = nullptr;
  if (bkv_realms_repair(realms, argv[2], pw, std::strlen(pw), &repaired,
                        &detail, &err) == BKV_OK) {
    return Fail("a repair needs a recovery on this handle first", err);
  }
  bkv_error_free(err);
  err = nullptr;
  if (bkv_realms_recover(realms, argv[2], "nope", 4, &got, &faults, &detail,
                         &err) != BKV_VAULT_INVALID_PASSWORD ||
      detail.attempts_remaining != 4 ||
      detail.attempt != BKV_VAULT_ATTEMPT_SPENT) {
    return Fail("a wrong password must be INVALID_PASSWORD, 4 left", err);
  }
  bkv_error_free(err);
  err = nullptr;
  if (bkv_realms_recover(realms, argv[2], pw, std::strlen(pw), &got, &faults,
                         &detail, &err) != BKV_OK) {
    return Fail("recover", err);
  }
  if (faults == nullptr || std::strstr(faults, "realm-c") == nullptr) {
    return Fail("the tampered realm must be named", faults);
  }
  if (bkv_realms_wait_rotation(realms, &detail, &err) != BKV_OK) {
    return Fail("no rotation runs (no_rotation)", err);
  }
  // Every realm still holds the recovered version: nothing to repair.
  if (bkv_realms_repair(realms, argv[2], pw, std::strlen(pw), &repaired,
                        &detail, &err) != BKV_OK ||
      repaired != nullptr) {
    return Fail("nothing to repair", err);
  }
  // Two threads on one handle (realm3 review finding 8): both get the key,
  // one after the other (the test's relay holds every status call and sees
  // them overlap if the handle's mutex is missing).
  bkv_status both[2] = {BKV_INTERNAL, BKV_INTERNAL};
  bkv_key* keys[2] = {nullptr, nullptr};
  std::thread other([&] {
    both[1] = bkv_realms_recover(realms, argv[2], pw, std::strlen(pw), &keys[1],
                                 nullptr, nullptr, nullptr);
  });
  both[0] = bkv_realms_recover(realms, argv[2], pw, std::strlen(pw), &keys[0],
                               nullptr, nullptr, nullptr);
  other.join();
  if (both[0] != BKV_OK || both[1] != BKV_OK) {
    return Fail("two threads recovering on one handle", "not both BKV_OK");
  }
  bkv_key_free(keys[0]);
  bkv_key_free(keys[1]);
  // A failed recover drops the earlier one's key and proofs (realm3 review
  // finding 8): no repair from them.
  bkv_key* none = nullptr;
  if (bkv_realms_recover(realms, argv[2], "nope", 4, &none, nullptr, &detail,
                         &err) != BKV_VAULT_INVALID_PASSWORD) {
    return Fail("a wrong password must be INVALID_PASSWORD", err);
  }
  bkv_error_free(err);
  err = nullptr;
  if (bkv_realms_repair(realms, argv[2], pw, std::strlen(pw), &repaired,
                        &detail, &err) == BKV_OK) {
    return Fail("a repair after a failed recover must be refused", err);
  }
  bkv_error_free(err);
  err = nullptr;
  char *a = nullptr, *b = nullptr;
  if (bkv_key_format(key, &a, &err) != BKV_OK ||
      bkv_key_format(got, &b, &err) != BKV_OK || std::strcmp(a, b) != 0) {
    return Fail("the recovered key differs", err);
  }
  bkv_string_free(a);
  bkv_string_free(b);
  // A password change (realm-c's proof still flipped: it is named, yet it
  // gave its KE3 proof, so every realm can be re-registered).
  const char* npw = "second kite meadow";
  if (bkv_realms_change_password(realms, argv[2], pw, std::strlen(pw), npw,
                                 std::strlen(npw), &detail, &err) != BKV_OK) {
    return Fail("change password", err);
  }
  if (bkv_realms_recover(realms, argv[2], pw, std::strlen(pw), &none, nullptr,
                         &detail, &err) != BKV_VAULT_INVALID_PASSWORD) {
    return Fail("the old password must be refused after the change", err);
  }
  bkv_error_free(err);
  err = nullptr;
  bkv_key* changed = nullptr;
  if (bkv_realms_recover(realms, argv[2], npw, std::strlen(npw), &changed,
                         nullptr, &detail, &err) != BKV_OK) {
    return Fail("recover with the new password", err);
  }
  if (bkv_key_format(key, &a, &err) != BKV_OK ||
      bkv_key_format(changed, &b, &err) != BKV_OK || std::strcmp(a, b) != 0) {
    return Fail("the key changed with the password", err);
  }
  bkv_string_free(a);
  bkv_string_free(b);
  bkv_key_free(changed);
  if (bkv_realms_migrate(realms, realms, argv[2], npw, std::strlen(npw),
                         nullptr, &detail, &err) == BKV_OK) {
    return Fail("a migration needs two handles", err);
  }
  bkv_error_free(err);
  err = nullptr;
  // Two handles without a state_dir: refused before anything is sent
  // (review of rset, finding 8).
  bkv_realms* stateless = nullptr;
  if (bkv_realms_open(&o, &stateless, &err) != BKV_OK)
    return Fail("open 2", err);
  if (bkv_realms_migrate(stateless, realms, argv[2], npw, std::strlen(npw),
                         nullptr, &detail, &err) != BKV_VAULT_CONFIG ||
      err == nullptr || std::strstr(err, "state directory") == nullptr) {
    return Fail("a migration needs a state_dir", err);
  }
  bkv_error_free(err);
  err = nullptr;
  bkv_realms_free(stateless);
  bkv_string_free(faults);
  bkv_key_free(key);
  bkv_key_free(got);
  bkv_realms_free(realms);
  return 0;
}
