// Keyring::Decode on arbitrary bytes, then Open of every slot it lists with
// a fixed secret: nothing may crash, and every decoded wrap has its size.
#include <cstdint>
#include <cstdlib>

#include "crypto/keyring.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ring = bkv::Keyring::Decode({data, size});
  if (!ring.ok()) return 0;
  bkv::SecretBytes secret(32);
  for (const bkv::KeySlot& s : ring->slots()) {
    (void)ring->Open(s.id, secret);
  }
  for (const bkv::KeySlot& s : ring->slots()) {
    if (s.wrap.size() != 60) std::abort();
  }
  return 0;
}
