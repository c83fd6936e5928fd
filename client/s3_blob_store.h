#ifndef BKV_CLIENT_S3_BLOB_STORE_H_
#define BKV_CLIENT_S3_BLOB_STORE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "client/blob_store.h"
#include "client/http_client.h"
#include "client/sigv4.h"

namespace bkv {

// S3-compatible object storage over path-style HTTP(S) requests signed with
// SigV4 (payload hashes signed). Objects smaller than the part size go in
// one PUT; larger ones as a multipart upload, buffering one part at a time
// (memory = part size), aborted on any failure so no partial object appears.
// Requests whose body is in memory are retried on 5xx, 429 and transport
// errors with exponential backoff. Credentials come from the environment
// and never appear in messages.
class S3BlobStore final : public BlobStore {
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
  std::vector<std::string> FailedCleanups() override;

 private:
  // Unfinished multipart uploads under the prefix started
  // kS3UploadLeftoverAgeS ago (ListMultipartUploads), aborted with
  // `remove`. Their size is not listed (it would take a ListParts each): 0.
  absl::StatusOr<std::vector<BlobInfo>> Leftovers(bool remove);
  S3BlobStore(std::string url, std::string endpoint, std::string bucket,
              std::string prefix, std::string region,
              SigV4Credentials credentials, const BlobStoreOptions& options);

  struct Call {
    std::string method;
    std::string key;  // object key below the bucket, "" for the bucket
    std::vector<std::pair<std::string, std::string>> query;
    std::span<const uint8_t> body;
    bool has_body = false;
    const ByteSink* sink = nullptr;
  };
  // Signs and sends with retries; non-2xx becomes an error.
  absl::StatusOr<HttpResponse> Send(const Call& call);
  std::string KeyOf(std::string_view name) const;
  absl::Status PutMultipart(const std::string& key, std::vector<uint8_t>& first,
                            ByteSource& source);

  std::string url_, endpoint_, host_, bucket_, prefix_, region_;
  SigV4Credentials credentials_;
  BlobStoreOptions options_;
  HttpClient http_;
  std::mutex failed_cleanups_mu_;
  std::vector<std::string> failed_cleanups_;  // guarded by the mutex
};

}  // namespace bkv

#endif  // BKV_CLIENT_S3_BLOB_STORE_H_
