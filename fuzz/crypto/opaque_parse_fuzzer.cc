// One parser per binary, chosen at build time by BKV_FUZZ_PARSER, so each
// gets its own corpus: a valid parse must re-serialize to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include "crypto/opaque.h"

using namespace bkv::opaque;  // NOLINT(build/namespaces): fuzzer main file

template <typename T>
void Check(std::span<const uint8_t> in) {
  auto parsed = T::Parse(in);
  if (!parsed.ok()) return;
  auto out = parsed->Serialize();
  if (out.size() != in.size() || std::memcmp(out.data(), in.data(), in.size()))
    std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
#if BKV_FUZZ_PARSER == 1
  Check<RegistrationRequest>(in);
#elif BKV_FUZZ_PARSER == 2
  Check<RegistrationResponse>(in);
#elif BKV_FUZZ_PARSER == 3
  Check<RegistrationRecord>(in);
#elif BKV_FUZZ_PARSER == 4
  Check<KE1>(in);
#elif BKV_FUZZ_PARSER == 5
  Check<KE2>(in);
#elif BKV_FUZZ_PARSER == 6
  Check<KE3>(in);
#elif BKV_FUZZ_PARSER == 7
  auto state = ServerLoginState::Import(bkv::SecretBytes::Copy(in));
  if (state.ok() != (size == kServerLoginStateSize)) std::abort();
#else
#error "set BKV_FUZZ_PARSER"
#endif
  return 0;
}
