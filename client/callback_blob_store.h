#ifndef BKV_CLIENT_CALLBACK_BLOB_STORE_H_
#define BKV_CLIENT_CALLBACK_BLOB_STORE_H_

// A BlobStore whose operations are the app's C callbacks
// (bkv_store_callbacks in bkv/bkv.h): how an app plugs in a cloud reached
// through its platform's SDK. The atomic-Put contract is the app's to keep
// (bkv.h says how); this adapter checks names, pulls ranged reads until the
// end, and turns each callback's bkv_status into the matching SDK status,
// naming the store, the operation and the object.
//
// Thread-compatible, like every BlobStore.

#include <string>

#include "bkv/bkv.h"
#include "client/blob_store.h"

namespace bkv {

class CallbackBlobStore final : public BlobStore {
 public:
  // Bytes asked for per get callback.
  static constexpr size_t kGetChunk = 1 << 20;

  CallbackBlobStore(const bkv_store_callbacks& callbacks, void* ctx,
                    std::string name);
  ~CallbackBlobStore() override;

  absl::Status Put(std::string_view name, ByteSource& source) override;
  absl::Status Get(std::string_view name, const ByteSink& sink) override;
  absl::StatusOr<std::vector<BlobInfo>> List() override;
  absl::Status Delete(std::string_view name) override;
  absl::StatusOr<BlobInfo> Stat(std::string_view name) override;
  std::string url() const override { return name_; }

 private:
  absl::Status Result(bkv_status code, const bkv_store_error& error,
                      const char* op, const std::string& object) const;

  bkv_store_callbacks cb_;
  void* ctx_;
  std::string name_;
};

// InvalidArgument unless every callback but destroy is set.
absl::Status ValidateStoreCallbacks(const bkv_store_callbacks& callbacks);

}  // namespace bkv

#endif  // BKV_CLIENT_CALLBACK_BLOB_STORE_H_
