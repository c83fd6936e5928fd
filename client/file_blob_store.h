#ifndef BKV_CLIENT_FILE_BLOB_STORE_H_
#define BKV_CLIENT_FILE_BLOB_STORE_H_

#include <memory>
#include <string>

#include "client/blob_store.h"

namespace bkv {

// Objects as files in one local directory (created if missing and `create`;
// otherwise a missing directory is NotFound, so an unmounted disk is not
// mistaken for an empty store). Put writes
// ".tmp-<random>-<name>" with mode 0600, fsyncs it, renames it over <name>
// and fsyncs the directory, so a crash leaves the old object or the new one.
class FileBlobStore final : public BlobStore {
 public:
  // url: file:///absolute/path
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(const std::string& url,
                                                         bool create = true);

  absl::Status Put(std::string_view name, ByteSource& source) override;
  // link(2) of the synced temporary: fails with EEXIST if <name> exists.
  absl::Status PutIfAbsent(std::string_view name, ByteSource& source) override;
  absl::Status Get(std::string_view name, const ByteSink& sink) override;
  absl::StatusOr<std::vector<BlobInfo>> List() override;
  absl::Status Delete(std::string_view name) override;
  absl::StatusOr<BlobInfo> Stat(std::string_view name) override;
  std::string url() const override { return url_; }
  // `.tmp-*` files that no process holds locked (PosixFile locks what it
  // writes) and that were last written over a minute ago.
  absl::StatusOr<std::vector<BlobInfo>> FindLeftovers() override {
    return Leftovers(false);
  }
  absl::StatusOr<std::vector<BlobInfo>> SweepTemporaries() override {
    return Leftovers(true);
  }

 private:
  absl::Status Write(std::string_view name, ByteSource& source, bool replace);
  absl::StatusOr<std::vector<BlobInfo>> Leftovers(bool remove);
  FileBlobStore(std::string url, std::string dir)
      : url_(std::move(url)), dir_(std::move(dir)) {}
  std::string PathOf(std::string_view name) const;
  std::string url_;
  std::string dir_;
};

}  // namespace bkv

#endif  // BKV_CLIENT_FILE_BLOB_STORE_H_
