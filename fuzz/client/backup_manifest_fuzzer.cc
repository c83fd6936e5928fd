// DecodeManifest on arbitrary text: never crashes, and what decodes encodes
// back to the same text.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "client/backup_set.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto records = bkv::DecodeManifest(text);
  if (records.ok()) {
    auto again = bkv::DecodeManifest(bkv::EncodeManifest(*records));
    if (!again.ok() || again->size() != records->size()) std::abort();
  }
  return 0;
}
