// Descriptor::Parse and ParseSealed on arbitrary bytes: never crash, whatever
// parses serializes back to the same bytes (the layout is canonical, so the
// commitment of equal descriptors is equal), and Parse accepts nothing
// ParseSealed refuses (it adds only the dealing check).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "crypto/threshold_descriptor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  auto d = bkv::threshold::Descriptor::Parse(in);
  auto sealed = bkv::threshold::Descriptor::ParseSealed(in);
  if (d.ok() && !sealed.ok()) std::abort();
  if (sealed.ok()) {
    auto out = sealed->Serialize();
    if (!std::equal(out.begin(), out.end(), in.begin(), in.end())) std::abort();
  }
  return 0;
}
