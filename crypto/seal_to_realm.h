#ifndef BKV_CRYPTO_SEAL_TO_REALM_H_
#define BKV_CRYPTO_SEAL_TO_REALM_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/random.h"
#include "crypto/ristretto255.h"
#include "crypto/secret_bytes.h"
#include "crypto/threshold_oprf.h"

// How a registering client hands a realm its secrets (OPRF key share, second
// secret share, wrapped key) so that only that realm can read them, even past
// a TLS terminator: a one-shot Diffie-Hellman to the realm's pinned identity
// key (its OPAQUE AKE key), docs/threshold.md "Wire".
//
//   e random, E = e * G,  dh = e * identity_key  (= sk * E at the realm)
//   prk    = HKDF-Extract("bkv/threshold/seal-to-realm/v1", dh)
//   key    = HKDF-Expand(prk, E || identity_key || context, 32)
//   sealed = E[32] || AES-256-GCM(key, nonce = 0^12, payload, aad = context)
//
// Each seal has a fresh e, hence a fresh key, so the fixed nonce never
// repeats under a key. context = RegistrationContext(account, version)
// binds the payload to one account's one registration. Thread-safe.
namespace bkv::threshold {

// I2OSP(len(account_id), 2) || account_id || version.
std::vector<uint8_t> RegistrationContext(absl::string_view account_id,
                                         const RegistrationVersion& version);

absl::StatusOr<std::vector<uint8_t>> SealToRealm(
    const ristretto255::Element& identity_key, std::span<const uint8_t> context,
    const SecretBytes& payload, const RandomSource& rng = SystemRandom());

// DataLoss if the seal was made for another key or context or was changed;
// InvalidArgument if it is too short or E is not a valid element.
absl::StatusOr<SecretBytes> OpenAsRealm(const SecretBytes& identity_private_key,
                                        std::span<const uint8_t> context,
                                        std::span<const uint8_t> sealed);

}  // namespace bkv::threshold

#endif  // BKV_CRYPTO_SEAL_TO_REALM_H_
