// Descriptor::Parse and ParseSealed on arbitrary bytes: never crash, whatever
// parses serializes back to the same bytes (the layout is canonical, so the
// commitment of equal descriptors is equal), and whatever ParseSealed
// accepts keeps every policy floor, checked here by its own arithmetic
// rather than the parser's helpers: the realm's recovery path reads stored
// descriptors with ParseSealed (docs/threshold.md, "Policy floors still
// hold for a sealed descriptor"). Parse = ParseSealed + the dealing check, so
// "Parse accepts nothing ParseSealed refuses" held by construction and is no
// longer asserted (review of the threshold release, finding 4).
#include <cstdint>
#include <cstdlib>
#include <span>

#include "crypto/threshold_descriptor.h"

namespace {

bool KeepsTheFloors(const bkv::threshold::Descriptor& d) {
  const int n = static_cast<int>(d.realms.size());
  const bool rule = (n == 1 && d.t == 1) || (d.t >= 2 && n == 2 * d.t - 1);
  const uint64_t honest = static_cast<uint64_t>(n - d.t + 1);
  const bkv::Argon2idParams& floor = bkv::threshold::kMinKsf;
  return rule && n <= 16 && d.epoch >= 1 && d.advertised_limit >= honest &&
         d.per_realm_limit == d.advertised_limit / honest &&
         d.ksf.iterations >= floor.iterations &&
         d.ksf.memory_kib >= floor.memory_kib && d.ksf.parallelism >= 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  (void)bkv::threshold::Descriptor::Parse(in);  // the dealing check: no crash
  auto sealed = bkv::threshold::Descriptor::ParseSealed(in);
  if (sealed.ok()) {
    auto out = sealed->Serialize();
    if (!std::equal(out.begin(), out.end(), in.begin(), in.end())) std::abort();
    if (!KeepsTheFloors(*sealed)) std::abort();
  }
  return 0;
}
