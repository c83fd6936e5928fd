#ifndef BKV_CLIENT_CANCELLABLE_BLOB_STORE_H_
#define BKV_CLIENT_CANCELLABLE_BLOB_STORE_H_

// A BlobStore seen through one app call: every operation, and every block a
// transfer moves, first checks the call's CancelToken and stops with
// CancelledByApp(); the bytes a call uploads (or downloads) are reported to
// its progress observer. Because
// every backup, restore and repository operation reaches the store through
// here, cancellation needs no hook in the pipelines themselves: a stopped
// Put never becomes visible (BlobStore's atomic-Put contract) and a stopped
// restore removes its partial output, as after any store failure.
//
// Thread-compatible; set_call() between operations only.

#include <cstdint>
#include <functional>

#include "client/blob_store.h"
#include "client/cancel.h"

namespace bkv {

class CancellableBlobStore final : public BlobStore {
 public:
  using BytesFn = std::function<void(uint64_t bytes_so_far)>;
  enum class Count { kUploads, kDownloads };

  explicit CancellableBlobStore(BlobStore& inner) : inner_(inner) {}

  // The token (may be null) and progress observer (may be empty) of the
  // call about to run; the count restarts at zero.
  void set_call(CancelToken* cancel, BytesFn on_bytes = nullptr,
                Count count = Count::kUploads);

  absl::Status Put(std::string_view name, ByteSource& source) override;
  absl::Status PutIfAbsent(std::string_view name, ByteSource& source) override;
  absl::Status Get(std::string_view name, const ByteSink& sink) override;
  absl::StatusOr<std::vector<BlobInfo>> List() override;
  absl::Status Delete(std::string_view name) override;
  absl::StatusOr<BlobInfo> Stat(std::string_view name) override;
  std::string url() const override { return inner_.url(); }
  absl::StatusOr<std::vector<BlobInfo>> SweepTemporaries() override {
    return inner_.SweepTemporaries();
  }
  absl::StatusOr<std::vector<BlobInfo>> FindLeftovers() override {
    return inner_.FindLeftovers();
  }
  std::vector<std::string> FailedCleanups() override {
    return inner_.FailedCleanups();
  }

 private:
  absl::Status Check() const;
  absl::Status CheckedPut(std::string_view name, ByteSource& source,
                          bool if_absent);

  BlobStore& inner_;
  CancelToken* cancel_ = nullptr;
  void Counted(Count direction, uint64_t n);

  BytesFn on_bytes_;
  Count count_ = Count::kUploads;
  uint64_t bytes_ = 0;
};

}  // namespace bkv

#endif  // BKV_CLIENT_CANCELLABLE_BLOB_STORE_H_
