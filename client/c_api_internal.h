#ifndef BKV_CLIENT_C_API_INTERNAL_H_
#define BKV_CLIENT_C_API_INTERNAL_H_

// What the C ABI's files (c_api.cc, c_api_vault.cc, c_api_repo.cc) share:
// the handles behind the opaque types and the helpers every entry point
// uses. Not installed.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bkv/bkv.h"
#include "client/backup_stream.h"
#include "client/blob_store.h"
#include "client/cancel.h"
#include "crypto/backup_key.h"

struct bkv_key {
  bkv::BackupKey key;
  // Released by bkv_vault_recover (after a counted login): a key that then
  // opens no slot is a changed keyring or vault record, not a typo.
  bool from_vault = false;
};
struct bkv_store {
  std::unique_ptr<bkv::BlobStore> store;
};
struct bkv_cancel {
  bkv::CancelToken token;
};

namespace bkv::capi {

// A malloc'ed NUL-terminated copy (freed by bkv_string_free/bkv_error_free).
char* CopyString(std::string_view s);
// StatusToC, with the message copied to *err (when err is not NULL).
bkv_status ToC(const absl::Status& s, char** err);
absl::Status Null(const char* what);
ProgressFn Progress(bkv_progress_fn fn, void* ctx);
// The master key for the key an app handed over: itself for a set without a
// keyring, else through the keyring (KeySlots::MasterFor, review #7).
absl::StatusOr<BackupKey> MasterKey(BlobStore& store, const bkv_key& key,
                                    std::string state_dir = {});
inline CancelToken* Token(bkv_cancel* cancel) {
  return cancel != nullptr ? &cancel->token : nullptr;
}

}  // namespace bkv::capi

namespace bkv {
// c_api_vault.cc: a vault (or realms) status as a bkv_status and detail.
bkv_status VaultToC(const absl::Status& s, bkv_vault_error* detail, char** err);
}  // namespace bkv

#endif  // BKV_CLIENT_C_API_INTERNAL_H_
