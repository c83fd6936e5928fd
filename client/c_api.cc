// The C ABI (client/include/bkv/bkv.h) over the C++ SDK. Every entry point
// catches nothing and throws nothing: Status values are mapped to bkv_status
// in exactly one place per family, ToC() for keys and stores and VaultToC()
// for the vault calls (whose statuses carry the vault's ErrorDetail).
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "bkv/bkv.h"
#include "client/backup_set.h"
#include "client/blob_store.h"
#include "client/vault_client.h"
#include "crypto/backup_key.h"
#include "crypto/secret_bytes.h"

struct bkv_key {
  bkv::BackupKey key;
};
struct bkv_store {
  std::unique_ptr<bkv::BlobStore> store;
};

namespace {

// The account token, read by the SDK before every RPC and replaceable from
// any thread while calls run. Kept in wiped memory: it is a bearer credential.
class AccountToken {
 public:
  void Set(std::string_view token) {
    bkv::SecretBytes next = bkv::SecretBytes::Copy(token);
    std::lock_guard<std::mutex> lock(mu_);
    token_ = std::move(next);
  }
  std::string Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::string(token_.RevealAsString());
  }

 private:
  mutable std::mutex mu_;
  bkv::SecretBytes token_;
};

}  // namespace

// The token is shared with the SDK's token callback, so it outlives the
// client whatever the member order.
struct bkv_vault {
  std::shared_ptr<AccountToken> token;
  std::unique_ptr<bkv::client::VaultClient> client;
};

namespace {

char* CopyString(std::string_view s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out == nullptr) return nullptr;
  std::memcpy(out, s.data(), s.size());
  out[s.size()] = '\0';
  return out;
}

bkv_status ToC(const absl::Status& s, char** err) {
  if (s.ok()) return BKV_OK;
  if (err != nullptr) *err = CopyString(std::string(s.message()));
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return BKV_INVALID_ARGUMENT;
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return BKV_WRONG_KEY;
    case absl::StatusCode::kDataLoss:
      return BKV_CORRUPTED;
    case absl::StatusCode::kNotFound:
      return BKV_NOT_FOUND;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
      return BKV_UNAVAILABLE;
    case absl::StatusCode::kAlreadyExists:
      return BKV_ALREADY_EXISTS;
    case absl::StatusCode::kUnimplemented:
      return BKV_UNSUPPORTED;
    default:
      return BKV_INTERNAL;
  }
}

// Types the status with VaultError::From; zeroes *detail on success, fills it
// from the vault's ErrorDetail on failure.
bkv_status VaultToC(const absl::Status& s, bkv_vault_error* detail,
                    char** err) {
  if (detail != nullptr) *detail = bkv_vault_error{};
  if (s.ok()) return BKV_OK;
  const bkv::client::VaultError e = bkv::client::VaultError::From(s);
  if (detail != nullptr) {
    detail->attempts_remaining = e.attempts_remaining;
    detail->retry_after_ms = e.retry_after_ms;
    detail->attempt = e.attempt_spent == bkv::client::AttemptSpent::kNo
                          ? BKV_VAULT_ATTEMPT_NOT_SPENT
                      : e.attempt_spent == bkv::client::AttemptSpent::kYes
                          ? BKV_VAULT_ATTEMPT_SPENT
                          : BKV_VAULT_ATTEMPT_UNKNOWN;
    detail->retry_safe = e.retry_safe ? 1 : 0;
  }
  if (err != nullptr) *err = CopyString(bkv::client::DescribeVaultError(e));
  switch (e.kind) {
    case bkv::client::VaultErrorKind::kInvalidPassword:
      return BKV_VAULT_INVALID_PASSWORD;
    case bkv::client::VaultErrorKind::kLocked:
      return BKV_VAULT_LOCKED;
    case bkv::client::VaultErrorKind::kNotRegistered:
      return BKV_VAULT_NOT_REGISTERED;
    case bkv::client::VaultErrorKind::kRateLimited:
      return BKV_VAULT_RATE_LIMITED;
    case bkv::client::VaultErrorKind::kUnauthenticated:
      return BKV_VAULT_UNAUTHENTICATED;
    case bkv::client::VaultErrorKind::kTransient:
    case bkv::client::VaultErrorKind::kExpired:
      return BKV_UNAVAILABLE;
    case bkv::client::VaultErrorKind::kConfig:
      return BKV_VAULT_CONFIG;
    case bkv::client::VaultErrorKind::kProofRequired:
      return BKV_VAULT_PROOF_REQUIRED;
    case bkv::client::VaultErrorKind::kInvalidArgument:
      return BKV_INVALID_ARGUMENT;
    case bkv::client::VaultErrorKind::kInternal:
      return BKV_INTERNAL;
  }
  return BKV_INTERNAL;
}

// The password bytes, copied into wiped memory; no NUL needed.
bkv::SecretBytes Password(const char* password, size_t len) {
  return bkv::SecretBytes::Copy(std::string_view(password, len));
}

absl::Status Null(const char* what) {
  return absl::InvalidArgumentError(std::string(what) + " must not be NULL");
}

bkv::ProgressFn Progress(bkv_progress_fn fn, void* ctx) {
  if (fn == nullptr) return nullptr;
  return [fn, ctx](uint64_t done, uint64_t total) { fn(done, total, ctx); };
}

}  // namespace

extern "C" {

void bkv_error_free(char* err) { std::free(err); }

void bkv_string_free(char* s) {
  if (s == nullptr) return;
  volatile char* p = s;
  while (*p != '\0') *p++ = '\0';
  std::free(s);
}

const char* bkv_status_name(bkv_status status) {
  switch (status) {
    case BKV_OK:
      return "OK";
    case BKV_INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case BKV_WRONG_KEY:
      return "WRONG_KEY";
    case BKV_CORRUPTED:
      return "CORRUPTED";
    case BKV_NOT_FOUND:
      return "NOT_FOUND";
    case BKV_UNAVAILABLE:
      return "UNAVAILABLE";
    case BKV_ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case BKV_UNSUPPORTED:
      return "UNSUPPORTED";
    case BKV_INTERNAL:
      return "INTERNAL";
    case BKV_VAULT_INVALID_PASSWORD:
      return "VAULT_INVALID_PASSWORD";
    case BKV_VAULT_LOCKED:
      return "VAULT_LOCKED";
    case BKV_VAULT_NOT_REGISTERED:
      return "VAULT_NOT_REGISTERED";
    case BKV_VAULT_RATE_LIMITED:
      return "VAULT_RATE_LIMITED";
    case BKV_VAULT_UNAUTHENTICATED:
      return "VAULT_UNAUTHENTICATED";
    case BKV_VAULT_CONFIG:
      return "VAULT_CONFIG";
    case BKV_VAULT_PROOF_REQUIRED:
      return "VAULT_PROOF_REQUIRED";
  }
  return "UNKNOWN";
}

bkv_status bkv_key_generate(bkv_key** out, char** err) {
  if (out == nullptr) return ToC(Null("out"), err);
  *out = new bkv_key{bkv::BackupKey::Generate()};
  return BKV_OK;
}

bkv_status bkv_key_parse(const char* text, size_t len, bkv_key** out,
                         char** err) {
  if (text == nullptr || out == nullptr) return ToC(Null("text/out"), err);
  auto key = bkv::BackupKey::Parse(std::string_view(text, len));
  if (!key.ok()) return ToC(key.status(), err);
  *out = new bkv_key{std::move(*key)};
  return BKV_OK;
}

bkv_status bkv_key_format(const bkv_key* key, char** out_text, char** err) {
  if (key == nullptr || out_text == nullptr) {
    return ToC(Null("key/out_text"), err);
  }
  bkv::SecretBytes text = key->key.Format();
  *out_text = CopyString(text.RevealAsString());
  return BKV_OK;
}

void bkv_key_free(bkv_key* key) { delete key; }

bkv_status bkv_store_open(const char* url, bkv_store** out, char** err) {
  if (url == nullptr || out == nullptr) return ToC(Null("url/out"), err);
  auto store = bkv::OpenBlobStore(url);
  if (!store.ok()) return ToC(store.status(), err);
  *out = new bkv_store{std::move(*store)};
  return BKV_OK;
}

void bkv_store_free(bkv_store* store) { delete store; }

void bkv_backup_options_init(bkv_backup_options* options) {
  if (options == nullptr) return;
  *options = bkv_backup_options{};
  options->compress = 1;
}

bkv_status bkv_backup(bkv_store* store, const bkv_key* key, const char* path,
                      const bkv_backup_options* options, char** out_backup_id,
                      char** err) {
  if (store == nullptr || key == nullptr || path == nullptr) {
    return ToC(Null("store/key/path"), err);
  }
  bkv::BackupOptions opts;
  if (options != nullptr) {
    if (options->chunk_size != 0) opts.chunk_size = options->chunk_size;
    opts.compress = options->compress != 0;
    opts.keep = options->keep;
    opts.stream.progress = Progress(options->progress, options->progress_ctx);
  }
  bkv::BackupSet set(*store->store, key->key);
  auto r = set.Backup(path, opts);
  if (!r.ok()) return ToC(r.status(), err);
  if (out_backup_id != nullptr) *out_backup_id = CopyString(r->id);
  return BKV_OK;
}

bkv_status bkv_restore(bkv_store* store, const bkv_key* key,
                       const char* backup_id, const char* target_path,
                       bkv_progress_fn progress, void* progress_ctx,
                       char** err) {
  if (store == nullptr || key == nullptr || target_path == nullptr) {
    return ToC(Null("store/key/target_path"), err);
  }
  bkv::StreamOptions opts;
  opts.progress = Progress(progress, progress_ctx);
  bkv::BackupSet set(*store->store, key->key);
  return ToC(
      set.Restore(backup_id ? backup_id : "", target_path, opts).status(), err);
}

bkv_status bkv_list(bkv_store* store, const bkv_key* key, char** out_ids,
                    char** err) {
  if (store == nullptr || key == nullptr || out_ids == nullptr) {
    return ToC(Null("store/key/out_ids"), err);
  }
  bkv::BackupSet set(*store->store, key->key);
  auto records = set.List();
  if (!records.ok()) return ToC(records.status(), err);
  std::string ids;
  for (const auto& r : *records) ids += r.id + "\n";
  *out_ids = CopyString(ids);
  return BKV_OK;
}

void bkv_vault_options_init(bkv_vault_options* options) {
  if (options == nullptr) return;
  *options = bkv_vault_options{};
}

bkv_status bkv_vault_open(const bkv_vault_options* options, bkv_vault** out,
                          char** err) {
  if (options == nullptr || out == nullptr) {
    return VaultToC(Null("options/out"), nullptr, err);
  }
  const bkv_vault_options& o = *options;
  if (o.address == nullptr || o.address[0] == '\0') {
    return VaultToC(absl::InvalidArgumentError(
                        "options.address must be the vault's host:port"),
                    nullptr, err);
  }
  if (o.server_public_key == nullptr) {
    return VaultToC(Null("options.server_public_key"), nullptr, err);
  }
  bkv::client::VaultOptions opts;
  opts.address = o.address;
  auto key = bkv::client::ParseServerPublicKey(o.server_public_key);
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
  auto token = std::make_shared<AccountToken>();
  if (o.account_token != nullptr) token->Set(o.account_token);
  opts.account_token = [token] { return token->Get(); };
  auto client = bkv::client::VaultClient::Create(std::move(opts));
  if (!client.ok()) return VaultToC(client.status(), nullptr, err);
  *out = new bkv_vault{std::move(token), std::move(*client)};
  return BKV_OK;
}

void bkv_vault_free(bkv_vault* vault) { delete vault; }

bkv_status bkv_vault_set_token(bkv_vault* vault, const char* account_token,
                               char** err) {
  if (vault == nullptr || account_token == nullptr) {
    return VaultToC(Null("vault/account_token"), nullptr, err);
  }
  vault->token->Set(account_token);
  return BKV_OK;
}

bkv_status bkv_vault_register(bkv_vault* vault, const char* account,
                              const char* password, size_t password_len,
                              const bkv_key* key, bkv_vault_error* out_detail,
                              char** err) {
  if (vault == nullptr || account == nullptr || password == nullptr ||
      key == nullptr) {
    return VaultToC(Null("vault/account/password/key"), out_detail, err);
  }
  const bkv::SecretBytes pw = Password(password, password_len);
  return VaultToC(
      vault->client->Register(account, pw, key->key.secret()).status(),
      out_detail, err);
}

bkv_status bkv_vault_recover(bkv_vault* vault, const char* account,
                             const char* password, size_t password_len,
                             bkv_key** out_key, bkv_vault_error* out_detail,
                             char** err) {
  if (vault == nullptr || account == nullptr || password == nullptr ||
      out_key == nullptr) {
    return VaultToC(Null("vault/account/password/out_key"), out_detail, err);
  }
  const bkv::SecretBytes pw = Password(password, password_len);
  auto secret = vault->client->Recover(account, pw);
  if (!secret.ok()) return VaultToC(secret.status(), out_detail, err);
  auto key = bkv::BackupKey::FromBytes(*secret);
  if (!key.ok()) return VaultToC(key.status(), out_detail, err);
  *out_key = new bkv_key{std::move(*key)};
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_vault_status(bkv_vault* vault, bkv_vault_state* out_state,
                            uint32_t* out_attempts_remaining,
                            uint32_t* out_attempt_limit,
                            bkv_vault_error* out_detail, char** err) {
  if (vault == nullptr || out_state == nullptr) {
    return VaultToC(Null("vault/out_state"), out_detail, err);
  }
  auto st = vault->client->Status();
  if (!st.ok()) return VaultToC(st.status(), out_detail, err);
  switch (st->state) {
    case bkv::client::VaultStatus::State::kNone:
      *out_state = BKV_VAULT_STATE_NONE;
      break;
    case bkv::client::VaultStatus::State::kActive:
      *out_state = BKV_VAULT_STATE_ACTIVE;
      break;
    case bkv::client::VaultStatus::State::kLocked:
      *out_state = BKV_VAULT_STATE_LOCKED;
      break;
  }
  if (out_attempts_remaining != nullptr) {
    *out_attempts_remaining = st->attempts_remaining;
  }
  if (out_attempt_limit != nullptr) *out_attempt_limit = st->attempt_limit;
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_vault_delete(bkv_vault* vault, bkv_vault_error* out_detail,
                            char** err) {
  if (vault == nullptr) return VaultToC(Null("vault"), out_detail, err);
  return VaultToC(vault->client->Delete(), out_detail, err);
}

bkv_status bkv_vault_delete_with_password(bkv_vault* vault, const char* account,
                                          const char* password,
                                          size_t password_len,
                                          bkv_vault_error* out_detail,
                                          char** err) {
  if (vault == nullptr || account == nullptr || password == nullptr) {
    return VaultToC(Null("vault/account/password"), out_detail, err);
  }
  const bkv::SecretBytes pw = Password(password, password_len);
  auto r = vault->client->RecoverWithProof(account, pw);
  if (!r.ok()) return VaultToC(r.status(), out_detail, err);
  return VaultToC(vault->client->Delete(r->proof), out_detail, err);
}

bkv_status bkv_vault_change_password(
    bkv_vault* vault, const char* account, const char* old_password,
    size_t old_password_len, const char* new_password, size_t new_password_len,
    uint32_t* out_attempt_limit, bkv_vault_error* out_detail, char** err) {
  if (vault == nullptr || account == nullptr || old_password == nullptr ||
      new_password == nullptr) {
    return VaultToC(Null("vault/account/old_password/new_password"), out_detail,
                    err);
  }
  const bkv::SecretBytes old_pw = Password(old_password, old_password_len);
  const bkv::SecretBytes new_pw = Password(new_password, new_password_len);
  auto reg = vault->client->ChangePassword(account, old_pw, new_pw);
  if (!reg.ok()) return VaultToC(reg.status(), out_detail, err);
  if (out_attempt_limit != nullptr) *out_attempt_limit = reg->attempt_limit;
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_vault_request_reset(bkv_vault* vault, int64_t* out_due_unix_ms,
                                   bkv_vault_error* out_detail, char** err) {
  if (vault == nullptr || out_due_unix_ms == nullptr) {
    return VaultToC(Null("vault/out_due_unix_ms"), out_detail, err);
  }
  auto due = vault->client->RequestReset();
  if (!due.ok()) return VaultToC(due.status(), out_detail, err);
  *out_due_unix_ms = *due;
  return VaultToC(absl::OkStatus(), out_detail, err);
}

bkv_status bkv_vault_registration(bkv_vault* vault,
                                  uint64_t* out_registration_id,
                                  int64_t* out_reset_due_unix_ms,
                                  bkv_vault_error* out_detail, char** err) {
  if (vault == nullptr || out_registration_id == nullptr ||
      out_reset_due_unix_ms == nullptr) {
    return VaultToC(Null("vault/out_registration_id/out_reset_due_unix_ms"),
                    out_detail, err);
  }
  auto st = vault->client->Status();
  if (!st.ok()) return VaultToC(st.status(), out_detail, err);
  *out_registration_id = st->registration_id;
  *out_reset_due_unix_ms = st->reset_due_unix_ms;
  return VaultToC(absl::OkStatus(), out_detail, err);
}

}  // extern "C"
