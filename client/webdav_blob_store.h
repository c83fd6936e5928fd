#ifndef BKV_CLIENT_WEBDAV_BLOB_STORE_H_
#define BKV_CLIENT_WEBDAV_BLOB_STORE_H_

#include <memory>
#include <string>

#include "client/blob_store.h"
#include "client/http_client.h"

namespace bkv {

// A WebDAV collection (RFC 4918) over HTTP(S) with basic auth. Put streams
// the body (chunked) to "tmp~<random>-<name>", then MOVEs it over <name>
// (Overwrite: T), so readers never see a partial object; a failed upload
// DELETEs the temporary. The collection is created with MKCOL on first Put.
// List is PROPFIND with Depth: 1. Credentials from BKV_WEBDAV_USER and
// BKV_WEBDAV_PASSWORD; never from the URL, never in messages.
class WebDavBlobStore final : public BlobStore {
 public:
  static absl::StatusOr<std::unique_ptr<BlobStore>> Open(
      const std::string& url, const BlobStoreOptions& options);

  absl::Status Put(std::string_view name, ByteSource& source) override;
  absl::Status Get(std::string_view name, const ByteSink& sink) override;
  absl::StatusOr<std::vector<BlobInfo>> List() override;
  absl::Status Delete(std::string_view name) override;
  absl::StatusOr<BlobInfo> Stat(std::string_view name) override;
  std::string url() const override { return url_; }
  absl::StatusOr<std::vector<BlobInfo>> FindLeftovers() override {
    return Leftovers(false);
  }
  absl::StatusOr<std::vector<BlobInfo>> SweepTemporaries() override {
    return Leftovers(true);
  }

 private:
  // Temporaries are named so that PROPFIND lists them (nginx's hides names
  // starting with '.') and List does not ('~' is no object name).
  static constexpr char kTempPrefix[] = "tmp~";
  // One PROPFIND (Depth: 1) answer: the collection's members.
  struct Member {
    std::string name;
    uint64_t size = 0;
    int64_t modified_unix = 0;  // 0: the server did not say
    bool collection = false;
  };
  absl::StatusOr<std::vector<Member>> Members();
  absl::StatusOr<std::vector<BlobInfo>> Leftovers(bool remove);
  WebDavBlobStore(std::string url, std::string base, std::string path,
                  const BlobStoreOptions& options);
  absl::StatusOr<HttpResponse> Send(HttpRequest req,
                                    std::initializer_list<long> ok);
  absl::Status EnsureCollection();

  std::string url_;
  std::string base_;  // http(s)://host:port
  std::string path_;  // "/dir/sub/" (encoded, trailing slash)
  std::string user_;
  SecretBytes password_;
  bool has_auth_ = false;
  bool collection_ready_ = false;
  bool create_ = true;  // BlobStoreOptions::create
  HttpClient http_;
};

}  // namespace bkv

#endif  // BKV_CLIENT_WEBDAV_BLOB_STORE_H_
