#ifndef BKV_SERVER_ACCOUNT_TOKEN_H_
#define BKV_SERVER_ACCOUNT_TOKEN_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crypto/secret_bytes.h"

namespace bkv::server {

// Account tokens: JWTs (RFC 7519) signed with EdDSA over Ed25519 (RFC 8037)
// by the messaging service. The vault spends no crypto or HSM work on a call
// until its token verifies.
//
//   header  {"alg":"EdDSA","typ":"JWT","kid":"<issuer key id>"}
//   payload {"sub":"<account id>","aud":"<vault audience>","iss":"...",
//            "iat":<unix s>,"exp":<unix s>}
//
// Keys are selected by `kid`, so the issuer can rotate them.

struct IssuerKey {
  std::string kid;
  std::array<uint8_t, 32> public_key;  // Ed25519
};

struct TokenPolicy {
  std::vector<IssuerKey> keys;
  std::string audience;
  // If non-empty, `iss` must equal it.
  std::string issuer;
  absl::Duration clock_skew = absl::Seconds(60);
  // Tokens valid for longer than this are refused: a leaked long-lived
  // token would let anyone spend a user's attempts.
  absl::Duration max_lifetime = absl::Hours(24);
};

// Thread-safe. A client sends the same token with every call of a login, so
// verified tokens are remembered (by SHA-256 of the whole token, signature
// included, until their `exp`): a repeat costs a hash, not an Ed25519
// verification. A forged or altered token never matches a remembered one.
class TokenVerifier {
 public:
  static absl::StatusOr<std::unique_ptr<TokenVerifier>> Create(
      TokenPolicy policy);

  // Returns the account id (`sub`). Every failure is kUnauthenticated with a
  // message saying what was wrong (never echoing the token).
  absl::StatusOr<std::string> Verify(absl::string_view token,
                                     absl::Time now) const;

 private:
  explicit TokenVerifier(TokenPolicy p) : policy_(std::move(p)) {}
  struct Verified {
    std::string account;
    absl::Time expires;  // exp + clock skew
  };
  absl::StatusOr<Verified> VerifyUncached(absl::string_view token,
                                          absl::Time now) const;

  static constexpr size_t kMaxCached = 1 << 16;
  const TokenPolicy policy_;
  mutable absl::Mutex mu_;
  mutable absl::flat_hash_map<std::string, Verified> cache_
      ABSL_GUARDED_BY(mu_);
};

// Issues a token; the messaging service's job, here for development and
// tests (`bkv-vault token mint`). `secret_key` is a 64-byte libsodium
// Ed25519 secret key.
absl::StatusOr<std::string> MintToken(
    const SecretBytes& secret_key, absl::string_view kid,
    absl::string_view subject, absl::string_view audience,
    absl::string_view issuer, absl::Time issued_at, absl::Duration lifetime);

struct Ed25519KeyPair {
  SecretBytes secret_key;  // 64 bytes (seed || public key), libsodium form
  std::array<uint8_t, 32> public_key;
};
Ed25519KeyPair GenerateEd25519KeyPair();

}  // namespace bkv::server

#endif  // BKV_SERVER_ACCOUNT_TOKEN_H_
