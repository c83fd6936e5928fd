// The C ABI (client/include/bkv/bkv.h) over the C++ SDK: keys, stores,
// backup sets, cancellation. The vault calls are in c_api_vault.cc, the
// repository calls in c_api_repo.cc. No entry point throws; statuses become
// bkv_status in one place (StatusToC, client/c_status.h), and every long
// call reaches its store through a CancellableBlobStore for its bkv_cancel.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "client/backup_set.h"
#include "client/c_api_internal.h"
#include "client/c_status.h"
#include "client/callback_blob_store.h"
#include "client/cancellable_blob_store.h"
#include "crypto/secret_bytes.h"

namespace bkv::capi {

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
  return StatusToC(s);
}

absl::Status Null(const char* what) {
  return absl::InvalidArgumentError(std::string(what) + " must not be NULL");
}

ProgressFn Progress(bkv_progress_fn fn, void* ctx) {
  if (fn == nullptr) return nullptr;
  return [fn, ctx](uint64_t done, uint64_t total) { fn(done, total, ctx); };
}

}  // namespace bkv::capi

// At global scope: a definition inside a namespace would not get the
// header's default visibility.
using bkv::BackupKey;
using bkv::BackupOptions;
using bkv::BackupSet;
using bkv::CallbackBlobStore;
using bkv::CancellableBlobStore;
using bkv::SecretBytes;
using bkv::StreamOptions;
using bkv::capi::CopyString;
using bkv::capi::Null;
using bkv::capi::ToC;

extern "C" {

void bkv_error_free(char* err) { std::free(err); }

void bkv_string_free(char* s) {
  if (s == nullptr) return;
  volatile char* p = s;
  while (*p != '\0') *p++ = '\0';
  std::free(s);
}

const char* bkv_status_name(bkv_status status) {
  return bkv::StatusName(status);
}

#define BKV_STR2(x) #x
#define BKV_STR(x) BKV_STR2(x)
const char* bkv_version(void) {
  return BKV_STR(BKV_VERSION_MAJOR) "." BKV_STR(BKV_VERSION_MINOR) "." BKV_STR(
      BKV_VERSION_PATCH);
}

bkv_status bkv_cancel_new(bkv_cancel** out, char** err) {
  if (out == nullptr) return ToC(Null("out"), err);
  *out = new bkv_cancel{};
  return BKV_OK;
}

void bkv_cancel_request(bkv_cancel* cancel) {
  if (cancel != nullptr) cancel->token.Cancel();
}

void bkv_cancel_free(bkv_cancel* cancel) { delete cancel; }

bkv_status bkv_key_generate(bkv_key** out, char** err) {
  if (out == nullptr) return ToC(Null("out"), err);
  *out = new bkv_key{BackupKey::Generate()};
  return BKV_OK;
}

bkv_status bkv_key_parse(const char* text, size_t len, bkv_key** out,
                         char** err) {
  if (text == nullptr || out == nullptr) return ToC(Null("text/out"), err);
  auto key = BackupKey::Parse(std::string_view(text, len));
  if (!key.ok()) return ToC(key.status(), err);
  *out = new bkv_key{std::move(*key)};
  return BKV_OK;
}

bkv_status bkv_key_format(const bkv_key* key, char** out_text, char** err) {
  if (key == nullptr || out_text == nullptr) {
    return ToC(Null("key/out_text"), err);
  }
  SecretBytes text = key->key.Format();
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

bkv_status bkv_store_new_callbacks(const bkv_store_callbacks* callbacks,
                                   void* ctx, const char* name, bkv_store** out,
                                   char** err) {
  if (callbacks == nullptr || name == nullptr || out == nullptr) {
    return ToC(Null("callbacks/name/out"), err);
  }
  absl::Status valid = bkv::ValidateStoreCallbacks(*callbacks);
  if (!valid.ok()) return ToC(valid, err);
  *out =
      new bkv_store{std::make_unique<CallbackBlobStore>(*callbacks, ctx, name)};
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
  BackupOptions opts;
  CancellableBlobStore view(*store->store);
  if (options != nullptr) {
    if (options->chunk_size != 0) opts.chunk_size = options->chunk_size;
    opts.compress = options->compress != 0;
    opts.keep = options->keep;
    opts.stream.progress =
        bkv::capi::Progress(options->progress, options->progress_ctx);
    view.set_call(bkv::capi::Token(options->cancel));
  }
  auto master = bkv::capi::MasterKey(view, *key);
  if (!master.ok()) return ToC(master.status(), err);
  BackupSet set(view, *master);
  auto r = set.Backup(path, opts);
  if (!r.ok()) return ToC(r.status(), err);
  if (out_backup_id != nullptr) *out_backup_id = CopyString(r->id);
  return BKV_OK;
}

bkv_status bkv_restore(bkv_store* store, const bkv_key* key,
                       const char* backup_id, const char* target_path,
                       const bkv_restore_options* options, char** err) {
  if (store == nullptr || key == nullptr || target_path == nullptr) {
    return ToC(Null("store/key/target_path"), err);
  }
  StreamOptions opts;
  CancellableBlobStore view(*store->store);
  if (options != nullptr) {
    opts.progress =
        bkv::capi::Progress(options->progress, options->progress_ctx);
    view.set_call(bkv::capi::Token(options->cancel));
  }
  auto master = bkv::capi::MasterKey(view, *key);
  if (!master.ok()) return ToC(master.status(), err);
  BackupSet set(view, *master);
  return ToC(
      set.Restore(backup_id ? backup_id : "", target_path, opts).status(), err);
}

bkv_status bkv_list(bkv_store* store, const bkv_key* key, char** out_ids,
                    char** err) {
  if (store == nullptr || key == nullptr || out_ids == nullptr) {
    return ToC(Null("store/key/out_ids"), err);
  }
  auto master = bkv::capi::MasterKey(*store->store, *key);
  if (!master.ok()) return ToC(master.status(), err);
  BackupSet set(*store->store, *master);
  auto records = set.List();
  if (!records.ok()) return ToC(records.status(), err);
  std::string ids;
  for (const auto& r : *records) ids += r.id + "\n";
  *out_ids = CopyString(ids);
  return BKV_OK;
}

}  // extern "C"
