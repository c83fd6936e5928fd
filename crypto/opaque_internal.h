#ifndef BKV_CRYPTO_OPAQUE_INTERNAL_H_
#define BKV_CRYPTO_OPAQUE_INTERNAL_H_

// Building blocks of crypto/opaque.h, exposed so the RFC 9807 vector tests
// can check intermediate values. Not an API for other modules.

#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/keyed_hash.h"
#include "crypto/opaque.h"
#include "crypto/secret_bytes.h"

namespace bkv::opaque::internal {

// §6.3.2.2 oprf_key: DeriveKeyPair(Expand(oprf_seed, id || "OprfKey", Nok),
// "OPAQUE-DeriveKeyPair").
absl::StatusOr<SecretBytes> DeriveOprfKey(const KeyedHash& oprf_seed,
                                          std::span<const uint8_t> id);

// §6.4.2 DeriveDiffieHellmanKeyPair.
struct DhKeyPair {
  SecretBytes private_key;
  Element public_key;
};
absl::StatusOr<DhKeyPair> DeriveDiffieHellmanKeyPair(
    std::span<const uint8_t> seed);

// §5.2.3 / §6.2.2: Extract("", oprf_output || Stretch(oprf_output)).
absl::StatusOr<SecretBytes> RandomizedPassword(const SecretBytes& oprf_output,
                                               const Ksf& ksf);

// §4.1.2 keys under the envelope nonce.
struct EnvelopeKeys {
  SecretBytes auth_key;
  SecretBytes export_key;
  SecretBytes seed;
};
EnvelopeKeys DeriveEnvelopeKeys(const SecretBytes& randomized_password,
                                std::span<const uint8_t> envelope_nonce);

// §6.4.1 Preamble for a login; `ke2` is the full 320-byte KE2 (its MAC is
// not part of the preamble).
std::vector<uint8_t> Preamble(const Config& config,
                              const Element& server_public_key,
                              const Element& client_public_key,
                              std::span<const uint8_t> ke1,
                              std::span<const uint8_t> ke2);

// §6.4.2 DeriveKeys.
struct AkeKeys {
  SecretBytes handshake_secret;
  SecretBytes km2;  // server MAC key
  SecretBytes km3;  // client MAC key
  SecretBytes session_key;
};
AkeKeys DeriveKeys(std::span<const uint8_t> ikm,
                   std::span<const uint8_t> preamble);

}  // namespace bkv::opaque::internal

#endif  // BKV_CRYPTO_OPAQUE_INTERNAL_H_
