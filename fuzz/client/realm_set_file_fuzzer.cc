// ParseRealmSet on arbitrary text: never crashes, and whatever parses
// formats to text that parses to the same canonical text again.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "client/realm_set_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  auto set = bkv::client::ParseRealmSet(in);
  if (set.ok()) {
    const std::string text = bkv::client::FormatRealmSet(*set);
    auto again = bkv::client::ParseRealmSet(text);
    if (!again.ok() || bkv::client::FormatRealmSet(*again) != text) {
      std::abort();
    }
  }
  return 0;
}
