// The C ABI of the threshold client (bkv_realms_*, bkv.h): a thin layer over
// client::ThresholdClient; statuses typed by VaultToC like bkv_vault_*.
#include <sodium.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "bkv/bkv.h"
#include "client/c_api_internal.h"
#include "client/realm_set_file.h"
#include "client/threshold_client.h"

// Every call holds `mu`: calls on one handle run one at a time
// (docs/threshold.md, "The C handle: threads and what it keeps").
struct bkv_realms {
  std::unique_ptr<bkv::client::ThresholdClient> client;
  std::mutex mu;
  // For bkv_realms_repair, from the last BKV_OK recover of `last_account`:
  // its key and proofs only when it left a realm lagging (`last`), wiped by
  // Forget; `recovered` says a recover succeeded (with or without them),
  // `recovered_at` when, on the monotonic clock (a wall clock set back must
  // not keep them longer: rthr finding 3).
  std::optional<bkv::client::ThresholdRecovery> last;
  std::string last_account;
  bool recovered = false;
  std::chrono::steady_clock::time_point recovered_at;
};

using bkv::SecretBytes;
using bkv::VaultToC;
namespace client = bkv::client;
namespace capi = bkv::capi;

namespace {

absl::StatusOr<client::ThresholdOptions> OptionsFrom(
    const bkv_realms_options& o, int n) {
  if (o.account_tokens == nullptr ||
      o.account_token_count != static_cast<size_t>(n)) {
    return absl::InvalidArgumentError(
        "options.account_tokens must hold one token per realm of the set");
  }
  client::ThresholdOptions t;
  if (o.tls_root_certs != nullptr) {
    t.vault.tls = true;
    t.vault.tls_root_certs = o.tls_root_certs;
  }
  if (o.timeout_ms != 0)
    t.vault.timeout = std::chrono::milliseconds(o.timeout_ms);
  if (o.argon2_iterations != 0) t.vault.ksf.iterations = o.argon2_iterations;
  if (o.argon2_memory_kib != 0) t.vault.ksf.memory_kib = o.argon2_memory_kib;
  if (o.argon2_parallelism != 0) t.vault.ksf.parallelism = o.argon2_parallelism;
  t.vault.insecure_plaintext = o.insecure_plaintext != 0;
  if (o.state_dir != nullptr) t.state_dir = o.state_dir;
  t.rotate = o.no_rotation == 0;
  return t;
}

// Repair's proofs expire at the realms after 10 minutes; Repair refuses
// after 9, so nothing older is worth keeping.
constexpr std::chrono::minutes kKeepForRepair{9};

// The app's account tokens (bearer secrets) for the client's token
// callback, zeroed when the handle's client goes (rthr finding 3).
struct Tokens {
  std::vector<std::string> ids, values;
  Tokens() = default;
  Tokens(const Tokens&) = delete;
  Tokens& operator=(const Tokens&) = delete;
  ~Tokens() {
    for (std::string& t : values) sodium_memzero(t.data(), t.size());
  }
};

// Drops what the handle keeps for repair; the key's SecretBytes wipes
// itself, the proofs (they authorize replacing the registration) are
// zeroed here.
void Forget(bkv_realms& r) {
  if (r.last) {
    for (std::string& p : r.last->proofs) sodium_memzero(p.data(), p.size());
    sodium_memzero(r.last->password_check.data(),
                   r.last->password_check.size());
  }
  r.last.reset();
  r.last_account.clear();
  r.recovered = false;
}

// Every call starts here: the handle's lock, and an expired recovery gone
// whole (its key and proofs, and that it happened).
std::unique_lock<std::mutex> Enter(bkv_realms& r) {
  std::unique_lock<std::mutex> lock(r.mu);
  if (r.recovered &&
      std::chrono::steady_clock::now() - r.recovered_at > kKeepForRepair) {
    Forget(r);
  }
  return lock;
}

}  // namespace

extern "C" {

void bkv_realms_options_init(bkv_realms_options* options) {
  if (options != nullptr) *options = bkv_realms_options{};
}

bkv_status bkv_realms_open(const bkv_realms_options* options, bkv_realms** out,
                           char** err) {
  if (options == nullptr || out == nullptr ||
      options->realm_set_file == nullptr) {
    return VaultToC(capi::Null("options/out/realm_set_file"), nullptr, err);
  }
  std::vector<client::RetiredRealm> retired;
  auto set =
      client::LoadRealmSetFile(options->realm_set_file, nullptr, &retired);
  if (!set.ok()) return VaultToC(set.status(), nullptr, err);
  auto opts = OptionsFrom(*options, set->n());
  if (!opts.ok()) return VaultToC(opts.status(), nullptr, err);
  opts->retired = std::move(retired);
  auto tokens = std::make_shared<Tokens>();
  tokens->values.reserve(set->n());
  for (int i = 0; i < set->n(); ++i) {
    if (options->account_tokens[i] == nullptr) {
      return VaultToC(capi::Null("options.account_tokens[i]"), nullptr, err);
    }
    tokens->ids.push_back(set->realms()[i].id);
    tokens->values.push_back(options->account_tokens[i]);
  }
  opts->account_token = [tokens](const std::string& id) {
    for (size_t i = 0; i < tokens->ids.size(); ++i) {
      if (tokens->ids[i] == id) return tokens->values[i];
    }
    return std::string();
  };
  auto c = client::ThresholdClient::Create(std::move(*set), std::move(*opts));
  if (!c.ok()) return VaultToC(c.status(), nullptr, err);
  *out = new bkv_realms{};
  (*out)->client = std::move(*c);
  return BKV_OK;
}

void bkv_realms_free(bkv_realms* realms) {
  if (realms == nullptr) return;
  {
    auto lock = Enter(*realms);
    Forget(*realms);
  }
  delete realms;
}

bkv_status bkv_realms_register(bkv_realms* realms, const char* account,
                               const char* password, size_t password_len,
                               const bkv_key* key, bkv_vault_error* out_detail,
                               char** err) {
  if (realms == nullptr || account == nullptr || password == nullptr ||
      key == nullptr) {
    return VaultToC(capi::Null("realms/account/password/key"), out_detail, err);
  }
  auto lock = Enter(*realms);
  const SecretBytes pw =
      SecretBytes::Copy(std::string_view(password, password_len));
  return VaultToC(
      realms->client->Register(account, pw, key->key.secret()).status(),
      out_detail, err);
}

bkv_status bkv_realms_recover(bkv_realms* realms, const char* account,
                              const char* password, size_t password_len,
                              bkv_key** out_key, char** out_faults,
                              bkv_vault_error* out_detail, char** err) {
  if (out_faults != nullptr) *out_faults = nullptr;
  if (realms == nullptr || account == nullptr || password == nullptr ||
      out_key == nullptr) {
    return VaultToC(capi::Null("realms/account/password/out_key"), out_detail,
                    err);
  }
  auto lock = Enter(*realms);
  // Whatever this recover's outcome, an older one's key and proofs go: a
  // repair after a failed recover must not use them (realm3 review 8).
  Forget(*realms);
  const SecretBytes pw =
      SecretBytes::Copy(std::string_view(password, password_len));
  auto got = realms->client->Recover(account, pw);
  if (!got.ok()) return VaultToC(got.status(), out_detail, err);
  auto key = bkv::BackupKey::FromBytes(got->backup_key);
  if (!key.ok()) return VaultToC(key.status(), out_detail, err);
  *out_key = new bkv_key{std::move(*key), /*from_vault=*/true};
  if (out_faults != nullptr && !got->faults.empty()) {
    *out_faults = capi::CopyString(client::DescribeFaults(got->faults));
  }
  realms->recovered = true;
  realms->recovered_at = got->recovered_at;  // before its KE3 round
  realms->last_account = account;
  // The key and proofs stay only when a realm needs repair.
  if (!got->lagging.empty()) {
    realms->last = std::move(*got);
  } else {
    for (std::string& p : got->proofs) sodium_memzero(p.data(), p.size());
  }
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_realms_repair(bkv_realms* realms, const char* account,
                             const char* password, size_t password_len,
                             char** out_repaired, bkv_vault_error* out_detail,
                             char** err) {
  if (out_repaired != nullptr) *out_repaired = nullptr;
  if (realms == nullptr || account == nullptr || password == nullptr) {
    return VaultToC(capi::Null("realms/account/password"), out_detail, err);
  }
  auto lock = Enter(*realms);
  if (!realms->recovered || realms->last_account != account) {
    return VaultToC(absl::FailedPreconditionError(
                        "bkv_realms_repair needs a successful "
                        "bkv_realms_recover of this account on this handle "
                        "within the last 9 minutes first"),
                    out_detail, err);
  }
  if (!realms->last) {  // that recovery found every realm on its version
    return VaultToC(absl::OkStatus(), out_detail, err);
  }
  const SecretBytes pw =
      SecretBytes::Copy(std::string_view(password, password_len));
  auto got = realms->client->Repair(account, pw, *realms->last);
  if (!got.ok()) return VaultToC(got.status(), out_detail, err);
  Forget(*realms);  // repaired: the key and proofs are not needed again
  if (out_repaired != nullptr && !got->repaired.empty()) {
    *out_repaired = capi::CopyString(absl::StrJoin(got->repaired, ", "));
  }
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_realms_wait_rotation(bkv_realms* realms,
                                    bkv_vault_error* out_detail, char** err) {
  if (realms == nullptr) {
    return VaultToC(capi::Null("realms"), out_detail, err);
  }
  auto lock = Enter(*realms);
  auto ended = realms->client->WaitForRotation();
  return VaultToC(ended.has_value() ? ended->status : absl::OkStatus(),
                  out_detail, err);
}

bkv_status bkv_realms_change_password(bkv_realms* realms, const char* account,
                                      const char* old_password,
                                      size_t old_password_len,
                                      const char* new_password,
                                      size_t new_password_len,
                                      bkv_vault_error* out_detail, char** err) {
  if (realms == nullptr || account == nullptr || old_password == nullptr ||
      new_password == nullptr) {
    return VaultToC(capi::Null("realms/account/old_password/new_password"),
                    out_detail, err);
  }
  auto lock = Enter(*realms);
  Forget(*realms);  // its proofs name the replaced version
  const SecretBytes old_pw =
      SecretBytes::Copy(std::string_view(old_password, old_password_len));
  const SecretBytes new_pw =
      SecretBytes::Copy(std::string_view(new_password, new_password_len));
  auto reg = realms->client->ChangePassword(account, old_pw, new_pw);
  if (!reg.ok() && client::IsPasswordChangeUnknown(reg.status())) {
    (void)VaultToC(reg.status(), out_detail, err);  // the detail and message
    return BKV_VAULT_PASSWORD_CHANGE_UNKNOWN;
  }
  if (!reg.ok() || reg->lagging.empty()) {
    return VaultToC(reg.status(), out_detail, err);
  }
  // In force, not at every realm: a status of its own (rthr finding 2).
  if (out_detail != nullptr) *out_detail = bkv_vault_error{};
  if (err != nullptr) {
    *err = capi::CopyString(absl::StrCat(
        "password changed: the new password is in force, but ",
        client::DescribeFaults(reg->lagging),
        " did not take it: tell its operator (a recovery repairs it)"));
  }
  return BKV_VAULT_PASSWORD_CHANGED_DEGRADED;
}

bkv_status bkv_realms_migrate(bkv_realms* to, bkv_realms* from,
                              const char* account, const char* password,
                              size_t password_len, char** out_not_deleted,
                              bkv_vault_error* out_detail, char** err) {
  if (out_not_deleted != nullptr) *out_not_deleted = nullptr;
  bkv_realms_migration m;
  const bkv_status s = bkv_realms_migrate2(to, from, account, password,
                                           password_len, &m, out_detail, err);
  if (out_not_deleted != nullptr) std::swap(*out_not_deleted, m.not_deleted);
  bkv_realms_migration_free(&m);
  return s;
}

bkv_status bkv_realms_migrate2(bkv_realms* to, bkv_realms* from,
                               const char* account, const char* password,
                               size_t password_len, bkv_realms_migration* out,
                               bkv_vault_error* out_detail, char** err) {
  if (out != nullptr) *out = bkv_realms_migration{};
  if (to == nullptr || from == nullptr || to == from || account == nullptr ||
      password == nullptr) {
    return VaultToC(capi::Null("to/from (two handles)/account/password"),
                    out_detail, err);
  }
  std::scoped_lock lock(to->mu, from->mu);  // both handles, deadlock-free
  Forget(*to);  // their proofs name the replaced registrations
  Forget(*from);
  const SecretBytes pw =
      SecretBytes::Copy(std::string_view(password, password_len));
  auto got = to->client->Migrate(account, pw, *from->client, {});
  if (!got.ok()) return VaultToC(got.status(), out_detail, err);
  if (out != nullptr) {
    // Review of rset, finding 9: what the CLI prints, for the app.
    auto copy = [](const std::string& s) {
      return s.empty() ? nullptr : capi::CopyString(s);
    };
    out->resumed = got->resumed ? 1 : 0;
    out->not_deleted = copy(client::DescribeFaults(got->not_deleted));
    out->deleted = copy(absl::StrJoin(got->deleted, ", "));
    out->lagging = copy(client::DescribeFaults(got->lagging));
    out->faults = copy(client::DescribeFaults(got->faults));
    out->note = copy(got->note);
  }
  return VaultToC(absl::OkStatus(), out_detail, err);
}

void bkv_realms_migration_free(bkv_realms_migration* m) {
  if (m == nullptr) return;
  for (char** s :
       {&m->not_deleted, &m->deleted, &m->lagging, &m->faults, &m->note}) {
    bkv_string_free(*s);
    *s = nullptr;
  }
}

}  // extern "C"
