// BackupKey::Parse on arbitrary text: never crashes; a parsed key formats to
// text that parses back to the same key.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "crypto/backup_key.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto key = bkv::BackupKey::Parse(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (key.ok()) {
    auto again = bkv::BackupKey::Parse(key->Format().RevealAsString());
    if (!again.ok() || !(again->secret() == key->secret())) std::abort();
  }
  return 0;
}
