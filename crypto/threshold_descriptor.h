#ifndef BKV_CRYPTO_THRESHOLD_DESCRIPTOR_H_
#define BKV_CRYPTO_THRESHOLD_DESCRIPTOR_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/ksf.h"
#include "crypto/ristretto255.h"
#include "crypto/threshold_oprf.h"

// The public description of one threshold registration, identical at every
// realm of that version (docs/threshold.md, "Registration descriptor"). A
// recovering client groups realms' answers by its commitment and proceeds
// only with t that agree. All integers big endian:
//
//   "bkv-threshold-descriptor/v1"           27-byte label
//   version[16]  n u8  t u8  L u32  G u32
//   ksf: iterations u32  memory_kib u32  parallelism u32
//   public_key[32]                          K = k * G
//   n x { id_len u8, realm_id, identity_key[32], public_share[32] }
//   wrapped_hash[32]                        SHA-256 of the wrapped backup key
//   commit_hash[32]                         SHA-256 of the commit secret
//
//   commitment = SHA-256(descriptor)
//
// Parse accepts only what a correct dealer writes: the realm-set rule, valid
// realm ids and elements, G = floor(L / (n - t + 1)), public shares on one
// polynomial of degree t - 1 through K, no trailing bytes.
namespace bkv::threshold {

struct DescriptorRealm {
  std::string realm_id;
  ristretto255::Element identity_key{};
  ristretto255::Element public_share{};
};

struct Descriptor {
  RegistrationVersion version{};
  int t = 0;
  uint32_t advertised_limit = 0;
  uint32_t per_realm_limit = 0;
  Argon2idParams ksf;
  ristretto255::Element public_key{};
  std::vector<DescriptorRealm> realms;  // Shamir index = position + 1
  std::array<uint8_t, 32> wrapped_hash{};
  std::array<uint8_t, 32> commit_hash{};

  static absl::StatusOr<Descriptor> Parse(std::span<const uint8_t> bytes);
  std::vector<uint8_t> Serialize() const;
  std::array<uint8_t, 32> Commitment() const;
};

}  // namespace bkv::threshold

#endif  // BKV_CRYPTO_THRESHOLD_DESCRIPTOR_H_
