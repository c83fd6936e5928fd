#include "client/callback_blob_store.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/c_status.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

// What the app's put pulls from: the SDK's ByteSource, keeping its error so
// the SDK's own status (e.g. cancelled) comes back unchanged.
struct Reader {
  ByteSource* source;
  absl::Status error;
};

bkv_status ReadFromSource(void* reader, uint8_t* buf, size_t cap,
                          size_t* out_len) {
  auto* r = static_cast<Reader*>(reader);
  *out_len = 0;
  if (!r->error.ok()) return StatusToC(r->error);
  absl::StatusOr<size_t> n = r->source->Read(std::span<uint8_t>(buf, cap));
  if (!n.ok()) {
    r->error = n.status();
    return StatusToC(r->error);
  }
  *out_len = *n;
  return BKV_OK;
}

void EmitBlob(void* lister, const char* name, uint64_t size) {
  if (name == nullptr) return;
  static_cast<std::vector<BlobInfo>*>(lister)->push_back({name, size});
}

}  // namespace

absl::Status ValidateStoreCallbacks(const bkv_store_callbacks& cb) {
  if (cb.put == nullptr || cb.get == nullptr || cb.list == nullptr ||
      cb.remove == nullptr || cb.stat == nullptr) {
    return absl::InvalidArgumentError(
        "bkv_store_callbacks: put, get, list, remove and stat must all be set");
  }
  return absl::OkStatus();
}

CallbackBlobStore::CallbackBlobStore(const bkv_store_callbacks& callbacks,
                                     void* ctx, std::string name)
    : cb_(callbacks), ctx_(ctx), name_(std::move(name)) {}

CallbackBlobStore::~CallbackBlobStore() {
  if (cb_.destroy != nullptr) cb_.destroy(ctx_);
}

absl::Status CallbackBlobStore::Result(bkv_status code,
                                       const bkv_store_error& error,
                                       const char* op,
                                       const std::string& object) const {
  if (code == BKV_OK) return absl::OkStatus();
  std::string why(error.message, strnlen(error.message, sizeof(error.message)));
  return StatusFromC(
      code, absl::StrCat(name_, ": ", op, " ", object, " failed (",
                         StatusName(code), why.empty() ? "" : ": ", why, ")"));
}

absl::Status CallbackBlobStore::Put(std::string_view name, ByteSource& source) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  const std::string n(name);
  Reader reader{&source, absl::OkStatus()};
  bkv_store_error e{};
  const bkv_status code = cb_.put(ctx_, n.c_str(), ReadFromSource, &reader, &e);
  // The source's own failure explains the abandoned put best.
  if (!reader.error.ok()) return reader.error;
  return Result(code, e, "put", n);
}

absl::Status CallbackBlobStore::Get(std::string_view name,
                                    const ByteSink& sink) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  const std::string n(name);
  std::vector<uint8_t> buf(kGetChunk);
  for (uint64_t offset = 0;;) {
    bkv_store_error e{};
    size_t got = 0;
    const bkv_status code =
        cb_.get(ctx_, n.c_str(), offset, buf.data(), buf.size(), &got, &e);
    BKV_RETURN_IF_ERROR(Result(code, e, "get", n));
    if (got > buf.size()) {
      return absl::InternalError(absl::StrCat(
          name_, ": get ", n, " returned more bytes than asked for"));
    }
    if (got > 0) BKV_RETURN_IF_ERROR(sink(std::span(buf.data(), got)));
    if (got < buf.size()) return absl::OkStatus();
    offset += got;
  }
}

absl::StatusOr<std::vector<BlobInfo>> CallbackBlobStore::List() {
  std::vector<BlobInfo> out;
  bkv_store_error e{};
  BKV_RETURN_IF_ERROR(
      Result(cb_.list(ctx_, EmitBlob, &out, &e), e, "list", ""));
  // Temporaries ('.' names) and foreign objects are not ours to list.
  std::erase_if(
      out, [](const BlobInfo& b) { return !ValidateBlobName(b.name).ok(); });
  // Sorted like the other stores list, whatever order the app reports.
  std::sort(out.begin(), out.end(), [](const BlobInfo& a, const BlobInfo& b) {
    return a.name < b.name;
  });
  return out;
}

absl::Status CallbackBlobStore::Delete(std::string_view name) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  const std::string n(name);
  bkv_store_error e{};
  const bkv_status code = cb_.remove(ctx_, n.c_str(), &e);
  if (code == BKV_NOT_FOUND) return absl::OkStatus();
  return Result(code, e, "delete", n);
}

absl::StatusOr<BlobInfo> CallbackBlobStore::Stat(std::string_view name) {
  BKV_RETURN_IF_ERROR(ValidateBlobName(name));
  const std::string n(name);
  bkv_store_error e{};
  uint64_t size = 0;
  BKV_RETURN_IF_ERROR(
      Result(cb_.stat(ctx_, n.c_str(), &size, &e), e, "stat", n));
  return BlobInfo{n, size};
}

}  // namespace bkv
