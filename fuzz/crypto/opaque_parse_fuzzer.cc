// One parser per binary, chosen at build time by BKV_FUZZ_PARSER, so each
// gets its own corpus: a valid parse must re-serialize to the same bytes, and
// no accepted element may have the top bit of its last byte set (RFC 9496
// §4.3.1; libsodium 1.0.18 alone lets it through).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <span>

#include "crypto/opaque.h"

using namespace bkv::opaque;  // NOLINT(build/namespaces): fuzzer main file

template <typename T>
void Check(std::span<const uint8_t> in,
           std::initializer_list<size_t> element_offsets) {
  auto parsed = T::Parse(in);
  if (!parsed.ok()) return;
  auto out = parsed->Serialize();
  if (out.size() != in.size() || std::memcmp(out.data(), in.data(), in.size()))
    std::abort();
  for (size_t offset : element_offsets) {
    if (in[offset + 31] & 0x80) std::abort();
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
#if BKV_FUZZ_PARSER == 1
  Check<RegistrationRequest>(in, {0});
#elif BKV_FUZZ_PARSER == 2
  Check<RegistrationResponse>(in, {0, 32});
#elif BKV_FUZZ_PARSER == 3
  Check<RegistrationRecord>(in, {0});
#elif BKV_FUZZ_PARSER == 4
  Check<KE1>(in, {0, 64});
#elif BKV_FUZZ_PARSER == 5
  Check<KE2>(in, {0, 224});
#elif BKV_FUZZ_PARSER == 6
  Check<KE3>(in, {});
#elif BKV_FUZZ_PARSER == 7
  auto state = ServerLoginState::Import(bkv::SecretBytes::Copy(in));
  if (state.ok() != (size == kServerLoginStateSize)) std::abort();
#else
#error "set BKV_FUZZ_PARSER"
#endif
  return 0;
}
