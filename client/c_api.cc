// The C ABI (client/include/bkv/bkv.h) over the C++ SDK. Every entry point
// catches nothing and throws nothing: Status values are mapped to bkv_status
// in exactly one place, ToC().
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "bkv/bkv.h"
#include "client/backup_set.h"
#include "client/blob_store.h"
#include "crypto/backup_key.h"

struct bkv_key {
  bkv::BackupKey key;
};
struct bkv_store {
  std::unique_ptr<bkv::BlobStore> store;
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

}  // extern "C"
