#include "client/repo/settled_read.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"

namespace bkv {

absl::StatusOr<std::vector<uint8_t>> GetSettled(
    BlobStore& store, std::string_view name, size_t max_size,
    const std::function<absl::Status(std::span<const uint8_t>)>& check,
    const SettleParams& params) {
  absl::Status last;
  int delay_ms = params.first_delay_ms;
  for (int read = 1; read <= params.reads; ++read) {  // bounded
    auto bytes = GetBytes(store, name, max_size);
    if (!bytes.ok()) return bytes.status();
    last = check(*bytes);
    if (!absl::IsDataLoss(last)) {
      if (!last.ok()) return last;
      return bytes;
    }
    if (read == params.reads) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    delay_ms *= 2;
  }
  const int waited_ms = params.first_delay_ms * ((1 << (params.reads - 1)) - 1);
  return absl::DataLossError(absl::StrCat(
      last.message(), " (the same on ", params.reads, " reads over ", waited_ms,
      " ms, so not a write in progress)"));
}

absl::StatusOr<std::vector<uint8_t>> GetOpened(
    BlobStore& store, const RepoKeys& keys, RepoObjectKind kind,
    std::span<const uint8_t> id, std::string_view name, size_t max_size,
    const SettleParams& params) {
  std::vector<uint8_t> plaintext;
  auto sealed = GetSettled(
      store, name, max_size,
      [&](std::span<const uint8_t> bytes) {
        auto pt = keys.Open(kind, id, bytes);
        if (!pt.ok()) return pt.status();
        plaintext = *std::move(pt);
        return absl::OkStatus();
      },
      params);
  if (!sealed.ok()) return sealed.status();
  return plaintext;
}

}  // namespace bkv
