// The C ABI's vault calls (bkv_vault_* in bkv/bkv.h) over VaultClient.
// Statuses are typed by VaultError::From, the client's one classifier, in
// VaultToC; a call cancelled by the app is reported before classifying.
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "client/c_api_internal.h"
#include "client/vault_client.h"
#include "crypto/secret_bytes.h"

namespace bkv::capi {

// The account token, read by the SDK before every RPC and replaceable from
// any thread while calls run. Kept in wiped memory: it is a bearer credential.
class AccountToken {
 public:
  void Set(std::string_view token) {
    SecretBytes next = SecretBytes::Copy(token);
    std::lock_guard<std::mutex> lock(mu_);
    token_ = std::move(next);
  }
  std::string Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::string(token_.RevealAsString());
  }

 private:
  mutable std::mutex mu_;
  SecretBytes token_;
};

}  // namespace bkv::capi

// The token is shared with the SDK's token callback, so it outlives the
// client whatever the member order.
struct bkv_vault {
  std::shared_ptr<bkv::capi::AccountToken> token;
  std::unique_ptr<bkv::client::VaultClient> client;
};

namespace bkv {

namespace {

using capi::CopyString;
using capi::ToC;

}  // namespace

// Types the status with VaultError::From; zeroes *detail on success, fills it
// from the vault's ErrorDetail on failure (also for bkv_realms_*).
bkv_status VaultToC(const absl::Status& s, bkv_vault_error* detail,
                    char** err) {
  if (detail != nullptr) *detail = bkv_vault_error{};
  if (s.ok()) return BKV_OK;
  if (IsCancelledByApp(s)) {  // stopped before anything counted or changed
    if (detail != nullptr) detail->retry_safe = 1;
    return ToC(s, err);
  }
  const client::VaultError e = client::VaultError::From(s);
  if (detail != nullptr) {
    detail->attempts_remaining = e.attempts_remaining;
    detail->retry_after_ms = e.retry_after_ms;
    detail->attempt = e.attempt_spent == client::AttemptSpent::kNo
                          ? BKV_VAULT_ATTEMPT_NOT_SPENT
                      : e.attempt_spent == client::AttemptSpent::kYes
                          ? BKV_VAULT_ATTEMPT_SPENT
                          : BKV_VAULT_ATTEMPT_UNKNOWN;
    detail->retry_safe = e.retry_safe ? 1 : 0;
  }
  if (err != nullptr) *err = CopyString(client::DescribeVaultError(e));
  switch (e.kind) {
    case client::VaultErrorKind::kInvalidPassword:
      return BKV_VAULT_INVALID_PASSWORD;
    case client::VaultErrorKind::kLocked:
      return BKV_VAULT_LOCKED;
    case client::VaultErrorKind::kNotRegistered:
      return BKV_VAULT_NOT_REGISTERED;
    case client::VaultErrorKind::kRateLimited:
      return BKV_VAULT_RATE_LIMITED;
    case client::VaultErrorKind::kUnauthenticated:
      return BKV_VAULT_UNAUTHENTICATED;
    case client::VaultErrorKind::kTransient:
    case client::VaultErrorKind::kExpired:
      return BKV_UNAVAILABLE;
    case client::VaultErrorKind::kConfig:
      return BKV_VAULT_CONFIG;
    case client::VaultErrorKind::kProofRequired:
      return BKV_VAULT_PROOF_REQUIRED;
    case client::VaultErrorKind::kInvalidArgument:
      return BKV_INVALID_ARGUMENT;
    case client::VaultErrorKind::kInternal:
      return BKV_INTERNAL;
    case client::VaultErrorKind::kRealmFault:
      return BKV_VAULT_REALM_FAULT;
    case client::VaultErrorKind::kRealmsDisagree:
      return BKV_VAULT_REALMS_DISAGREE;
    case client::VaultErrorKind::kStaleRegistration:
      return BKV_VAULT_STALE;
    case client::VaultErrorKind::kRealmDegraded:
      return BKV_VAULT_REALM_DEGRADED;
  }
  return BKV_INTERNAL;
}

namespace {

// The password bytes, copied into wiped memory; no NUL needed.
SecretBytes Password(const char* password, size_t len) {
  return SecretBytes::Copy(std::string_view(password, len));
}

}  // namespace
}  // namespace bkv

// At global scope: a definition inside a namespace would not get the
// header's default visibility.
using bkv::BackupKey;
using bkv::CancelScope;
using bkv::Password;
using bkv::SecretBytes;
using bkv::VaultToC;
namespace client = bkv::client;
namespace capi = bkv::capi;

extern "C" {

void bkv_vault_options_init(bkv_vault_options* options) {
  if (options == nullptr) return;
  *options = bkv_vault_options{};
}

bkv_status bkv_vault_open(const bkv_vault_options* options, bkv_vault** out,
                          char** err) {
  if (options == nullptr || out == nullptr) {
    return VaultToC(capi::Null("options/out"), nullptr, err);
  }
  const bkv_vault_options& o = *options;
  if (o.address == nullptr || o.address[0] == '\0') {
    return VaultToC(absl::InvalidArgumentError(
                        "options.address must be the vault's host:port"),
                    nullptr, err);
  }
  if (o.server_public_key == nullptr) {
    return VaultToC(capi::Null("options.server_public_key"), nullptr, err);
  }
  client::VaultOptions opts;
  opts.address = o.address;
  auto key = client::ParseServerPublicKey(o.server_public_key);
  if (!key.ok()) return VaultToC(key.status(), nullptr, err);
  opts.server_public_key = *key;
  if (o.opaque_context != nullptr) opts.opaque_context = o.opaque_context;
  if (o.tls_root_certs != nullptr) {
    opts.tls = true;
    opts.tls_root_certs = o.tls_root_certs;
  }
  if (o.timeout_ms != 0) {
    opts.timeout = std::chrono::milliseconds(o.timeout_ms);
  }
  if (o.argon2_iterations != 0) opts.ksf.iterations = o.argon2_iterations;
  if (o.argon2_memory_kib != 0) opts.ksf.memory_kib = o.argon2_memory_kib;
  if (o.argon2_parallelism != 0) opts.ksf.parallelism = o.argon2_parallelism;
  if (o.server_identity != nullptr) opts.server_identity = o.server_identity;
  opts.insecure_plaintext = o.insecure_plaintext != 0;
  opts.max_retry_wait = std::chrono::milliseconds(o.max_retry_wait_ms);
  auto token = std::make_shared<capi::AccountToken>();
  if (o.account_token != nullptr) token->Set(o.account_token);
  opts.account_token = [token] { return token->Get(); };
  auto client = client::VaultClient::Create(std::move(opts));
  if (!client.ok()) return VaultToC(client.status(), nullptr, err);
  *out = new bkv_vault{std::move(token), std::move(*client)};
  return BKV_OK;
}

void bkv_vault_free(bkv_vault* vault) { delete vault; }

bkv_status bkv_vault_set_token(bkv_vault* vault, const char* account_token,
                               char** err) {
  if (vault == nullptr || account_token == nullptr) {
    return VaultToC(capi::Null("vault/account_token"), nullptr, err);
  }
  vault->token->Set(account_token);
  return BKV_OK;
}

bkv_status bkv_vault_register(bkv_vault* vault, const char* account,
                              const char* password, size_t password_len,
                              const bkv_key* key, bkv_cancel* cancel,
                              bkv_vault_error* out_detail, char** err) {
  CancelScope scope(capi::Token(cancel));
  if (vault == nullptr || account == nullptr || password == nullptr ||
      key == nullptr) {
    return VaultToC(capi::Null("vault/account/password/key"), out_detail, err);
  }
  const SecretBytes pw = Password(password, password_len);
  return VaultToC(
      vault->client->Register(account, pw, key->key.secret()).status(),
      out_detail, err);
}

bkv_status bkv_vault_recover(bkv_vault* vault, const char* account,
                             const char* password, size_t password_len,
                             bkv_key** out_key, bkv_cancel* cancel,
                             bkv_vault_error* out_detail, char** err) {
  CancelScope scope(capi::Token(cancel));
  if (vault == nullptr || account == nullptr || password == nullptr ||
      out_key == nullptr) {
    return VaultToC(capi::Null("vault/account/password/out_key"), out_detail,
                    err);
  }
  const SecretBytes pw = Password(password, password_len);
  auto secret = vault->client->Recover(account, pw);
  if (!secret.ok()) return VaultToC(secret.status(), out_detail, err);
  auto key = BackupKey::FromBytes(*secret);
  if (!key.ok()) return VaultToC(key.status(), out_detail, err);
  *out_key = new bkv_key{std::move(*key), /*from_vault=*/true};
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_vault_status(bkv_vault* vault, bkv_vault_state* out_state,
                            uint32_t* out_attempts_remaining,
                            uint32_t* out_attempt_limit, bkv_cancel* cancel,
                            bkv_vault_error* out_detail, char** err) {
  CancelScope scope(capi::Token(cancel));
  if (vault == nullptr || out_state == nullptr) {
    return VaultToC(capi::Null("vault/out_state"), out_detail, err);
  }
  auto st = vault->client->Status();
  if (!st.ok()) return VaultToC(st.status(), out_detail, err);
  switch (st->state) {
    case client::VaultStatus::State::kNone:
      *out_state = BKV_VAULT_STATE_NONE;
      break;
    case client::VaultStatus::State::kActive:
      *out_state = BKV_VAULT_STATE_ACTIVE;
      break;
    case client::VaultStatus::State::kLocked:
      *out_state = BKV_VAULT_STATE_LOCKED;
      break;
  }
  if (out_attempts_remaining != nullptr) {
    *out_attempts_remaining = st->attempts_remaining;
  }
  if (out_attempt_limit != nullptr) *out_attempt_limit = st->attempt_limit;
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_vault_delete(bkv_vault* vault, bkv_cancel* cancel,
                            bkv_vault_error* out_detail, char** err) {
  CancelScope scope(capi::Token(cancel));
  if (vault == nullptr) return VaultToC(capi::Null("vault"), out_detail, err);
  return VaultToC(vault->client->Delete(), out_detail, err);
}

bkv_status bkv_vault_delete_with_password(bkv_vault* vault, const char* account,
                                          const char* password,
                                          size_t password_len,
                                          bkv_cancel* cancel,
                                          bkv_vault_error* out_detail,
                                          char** err) {
  CancelScope scope(capi::Token(cancel));
  if (vault == nullptr || account == nullptr || password == nullptr) {
    return VaultToC(capi::Null("vault/account/password"), out_detail, err);
  }
  const SecretBytes pw = Password(password, password_len);
  auto r = vault->client->RecoverWithProof(account, pw);
  if (!r.ok()) return VaultToC(r.status(), out_detail, err);
  return VaultToC(vault->client->Delete(r->proof), out_detail, err);
}

bkv_status bkv_vault_change_password(
    bkv_vault* vault, const char* account, const char* old_password,
    size_t old_password_len, const char* new_password, size_t new_password_len,
    uint32_t* out_attempt_limit, bkv_cancel* cancel,
    bkv_vault_error* out_detail, char** err) {
  CancelScope scope(capi::Token(cancel));
  if (vault == nullptr || account == nullptr || old_password == nullptr ||
      new_password == nullptr) {
    return VaultToC(capi::Null("vault/account/old_password/new_password"),
                    out_detail, err);
  }
  const SecretBytes old_pw = Password(old_password, old_password_len);
  const SecretBytes new_pw = Password(new_password, new_password_len);
  auto reg = vault->client->ChangePassword(account, old_pw, new_pw);
  if (!reg.ok()) return VaultToC(reg.status(), out_detail, err);
  if (out_attempt_limit != nullptr) *out_attempt_limit = reg->attempt_limit;
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_vault_request_reset(bkv_vault* vault, int64_t* out_due_unix_ms,
                                   bkv_cancel* cancel,
                                   bkv_vault_error* out_detail, char** err) {
  CancelScope scope(capi::Token(cancel));
  if (vault == nullptr || out_due_unix_ms == nullptr) {
    return VaultToC(capi::Null("vault/out_due_unix_ms"), out_detail, err);
  }
  auto due = vault->client->RequestReset();
  if (!due.ok()) return VaultToC(due.status(), out_detail, err);
  *out_due_unix_ms = *due;
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_vault_registration(bkv_vault* vault,
                                  uint64_t* out_registration_id,
                                  int64_t* out_reset_due_unix_ms,
                                  bkv_cancel* cancel,
                                  bkv_vault_error* out_detail, char** err) {
  CancelScope scope(capi::Token(cancel));
  if (vault == nullptr || out_registration_id == nullptr ||
      out_reset_due_unix_ms == nullptr) {
    return VaultToC(
        capi::Null("vault/out_registration_id/out_reset_due_unix_ms"),
        out_detail, err);
  }
  auto st = vault->client->Status();
  if (!st.ok()) return VaultToC(st.status(), out_detail, err);
  *out_registration_id = st->registration_id;
  *out_reset_due_unix_ms = st->reset_due_unix_ms;
  return VaultToC(absl::OkStatus(), out_detail, err);
}

}  // extern "C"
