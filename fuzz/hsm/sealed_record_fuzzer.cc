// The sealed-record splitter TokenSealer::Open runs before the token sees
// anything: any input must give DataLoss or a view that stays inside it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "hsm/token_sealer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  auto view = bkv::hsm::ParseSealedRecord(in);
  if (!view.ok()) {
    if (view.status().code() != absl::StatusCode::kDataLoss) std::abort();
    return 0;
  }
  if (view->iv.size() != bkv::hsm::TokenSealer::kIvSize ||
      view->iv.data() != data + 1 ||
      view->ciphertext_and_tag.data() + view->ciphertext_and_tag.size() !=
          data + size ||
      view->ciphertext_and_tag.size() < bkv::hsm::TokenSealer::kTagSize) {
    std::abort();
  }
  return 0;
}
