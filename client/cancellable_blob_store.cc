#include "client/cancellable_blob_store.h"

#include <utility>

#include "crypto/status_macros.h"

namespace bkv {
namespace {

// Passes the inner source's blocks on, unless the call was cancelled.
class CheckedSource final : public ByteSource {
 public:
  CheckedSource(ByteSource& inner, const std::function<absl::Status()>& check,
                const std::function<void(uint64_t)>& on_bytes)
      : inner_(inner), check_(check), on_bytes_(on_bytes) {}
  absl::StatusOr<size_t> Read(std::span<uint8_t> out) override {
    BKV_RETURN_IF_ERROR(check_());
    BKV_ASSIGN_OR_RETURN(size_t n, inner_.Read(out));
    on_bytes_(n);
    return n;
  }

 private:
  ByteSource& inner_;
  const std::function<absl::Status()>& check_;
  const std::function<void(uint64_t)>& on_bytes_;
};

}  // namespace

void CancellableBlobStore::set_call(CancelToken* cancel, BytesFn on_bytes,
                                    Count count) {
  cancel_ = cancel;
  on_bytes_ = std::move(on_bytes);
  count_ = count;
  bytes_ = 0;
}

void CancellableBlobStore::Counted(Count direction, uint64_t n) {
  if (direction != count_ || n == 0) return;
  bytes_ += n;
  if (on_bytes_) on_bytes_(bytes_);
}

absl::Status CancellableBlobStore::Check() const {
  if (cancel_ != nullptr && cancel_->cancelled()) return CancelledByApp();
  return absl::OkStatus();
}

absl::Status CancellableBlobStore::Put(std::string_view name,
                                       ByteSource& source) {
  return CheckedPut(name, source, /*if_absent=*/false);
}

absl::Status CancellableBlobStore::PutIfAbsent(std::string_view name,
                                               ByteSource& source) {
  return CheckedPut(name, source, /*if_absent=*/true);
}

absl::Status CancellableBlobStore::CheckedPut(std::string_view name,
                                              ByteSource& source,
                                              bool if_absent) {
  BKV_RETURN_IF_ERROR(Check());
  const std::function<absl::Status()> check = [this] { return Check(); };
  const std::function<void(uint64_t)> count = [this](uint64_t n) {
    Counted(Count::kUploads, n);
  };
  CheckedSource checked(source, check, count);
  return if_absent ? inner_.PutIfAbsent(name, checked)
                   : inner_.Put(name, checked);
}

absl::Status CancellableBlobStore::Get(std::string_view name,
                                       const ByteSink& sink) {
  BKV_RETURN_IF_ERROR(Check());
  return inner_.Get(name, [&](std::span<const uint8_t> bytes) -> absl::Status {
    BKV_RETURN_IF_ERROR(Check());
    Counted(Count::kDownloads, bytes.size());
    BKV_RETURN_IF_ERROR(sink(bytes));
    // The sink may have reported progress, and the app cancelled there.
    return Check();
  });
}

absl::StatusOr<std::vector<BlobInfo>> CancellableBlobStore::List() {
  BKV_RETURN_IF_ERROR(Check());
  return inner_.List();
}

absl::Status CancellableBlobStore::Delete(std::string_view name) {
  BKV_RETURN_IF_ERROR(Check());
  return inner_.Delete(name);
}

absl::StatusOr<BlobInfo> CancellableBlobStore::Stat(std::string_view name) {
  BKV_RETURN_IF_ERROR(Check());
  return inner_.Stat(name);
}

}  // namespace bkv
