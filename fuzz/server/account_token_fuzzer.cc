// Arbitrary bytes as an account token: Verify must never crash or throw,
// and nothing but a token signed by the configured key may pass.
#include <cstdint>
#include <cstdlib>

#include "server/account_token.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bkv::server;  // NOLINT(build/namespaces): fuzzer main file
  static const Ed25519KeyPair* kp =
      new Ed25519KeyPair(GenerateEd25519KeyPair());
  static const TokenVerifier* verifier =
      TokenVerifier::Create({{{"k1", kp->public_key}}, "bkv-vault", ""})
          ->release();
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  auto account = verifier->Verify(
      absl::string_view(reinterpret_cast<const char*>(data), size), now);
  // A random key no one else knows: forging a valid token is impossible.
  if (account.ok()) std::abort();
  if (account.status().code() != absl::StatusCode::kUnauthenticated) {
    std::abort();
  }
  return 0;
}
