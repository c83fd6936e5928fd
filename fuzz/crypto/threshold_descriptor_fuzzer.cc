// Descriptor::Parse on arbitrary bytes: never crashes, and whatever parses
// serializes back to the same bytes (the layout is canonical, so the
// commitment of equal descriptors is equal).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "crypto/threshold_descriptor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  auto d = bkv::threshold::Descriptor::Parse(in);
  if (d.ok()) {
    auto out = d->Serialize();
    if (!std::equal(out.begin(), out.end(), in.begin(), in.end())) std::abort();
  }
  return 0;
}
