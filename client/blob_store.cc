#include "client/blob_store.h"

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/file_blob_store.h"
#include "client/s3_blob_store.h"
#include "client/webdav_blob_store.h"

namespace bkv {

absl::Status ValidateBlobName(std::string_view name) {
  const bool ok = !name.empty() && name.size() <= 200 && name[0] != '.' &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                           c == '-';
                  });
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid object name '", std::string(name),
                     "': use 1-200 of [A-Za-z0-9._-], not starting with '.'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> SpanSource::Read(std::span<uint8_t> out) {
  const size_t n = std::min(out.size(), data_.size());
  if (n > 0) std::memcpy(out.data(), data_.data(), n);
  data_ = data_.subspan(n);
  return n;
}

absl::Status PutBytes(BlobStore& store, std::string_view name,
                      std::span<const uint8_t> bytes) {
  SpanSource source(bytes);
  return store.Put(name, source);
}

absl::StatusOr<std::vector<uint8_t>> GetBytes(BlobStore& store,
                                              std::string_view name,
                                              size_t max_size) {
  std::vector<uint8_t> out;
  absl::Status s = store.Get(name, [&](std::span<const uint8_t> part) {
    if (out.size() + part.size() > max_size) {
      return absl::OutOfRangeError(
          absl::StrCat("object '", std::string(name), "' in ", store.url(),
                       " is larger than ", max_size, " bytes"));
    }
    out.insert(out.end(), part.begin(), part.end());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::unique_ptr<BlobStore>> OpenBlobStore(
    std::string_view url, const BlobStoreOptions& options) {
  const std::string u(url);
  if (absl::StartsWith(u, "file://"))
    return FileBlobStore::Open(u, options.create);
  if (absl::StartsWith(u, "s3://")) return S3BlobStore::Open(u, options);
  if (absl::StartsWith(u, "webdav://") || absl::StartsWith(u, "webdavs://")) {
    return WebDavBlobStore::Open(u, options);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported store URL '", u,
                   "': use file:///path, s3://bucket/prefix?endpoint=... or "
                   "webdav(s)://host/path"));
}

}  // namespace bkv
