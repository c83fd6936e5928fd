#ifndef BKV_CRYPTO_THRESHOLD_DESCRIPTOR_H_
#define BKV_CRYPTO_THRESHOLD_DESCRIPTOR_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/ksf.h"
#include "crypto/realm_set.h"
#include "crypto/ristretto255.h"
#include "crypto/threshold_oprf.h"

// The public description of one threshold registration, identical at every
// realm of that version (docs/threshold.md, "Registration descriptor"). A
// recovering client groups realms' answers by its commitment and proceeds
// only with t that agree. All integers big endian:
//
//   "bkv-threshold-descriptor/v1"           27-byte label
//   version[16]  epoch u64  previous_commitment[32]
//   n u8  t u8  L u32  G u32
//   ksf: iterations u32  memory_kib u32  parallelism u32
//   public_key[32]                          K = k * G
//   second_public_key[32]                   S = s * G
//   n x { id_len u8, realm_id, identity_key[32], public_share[32],
//         second_public_share[32] }         K_i = k_i * G, S_i = s_i * G
//   wrapped_hash[32]                        SHA-256 of the wrapped backup key
//   commit_hash[32]                         SHA-256 of the commit secret
//
//   commitment = SHA-256(descriptor)
//
// Parse accepts only what a correct dealer writes: the realm-set rule, valid
// and distinct realm ids and identity keys, G = floor(L / (n - t + 1)), KSF
// parameters at or above kMinKsf, the K_i on one polynomial of degree
// exactly t - 1 through K and the S_i on one through S, no trailing bytes.
namespace bkv::threshold {

// The weakest KSF a descriptor may name. It is a protocol floor, below any
// realm's own policy (`min_ksf_memory_kib`, default 8 MiB as well): with
// 1 pass over 8 KiB, t colluding realms would guess offline almost for free.
inline constexpr Argon2idParams kMinKsf = {
    .iterations = 1, .memory_kib = 8192, .parallelism = 1};

struct DescriptorRealm {
  std::string realm_id;
  ristretto255::Element identity_key{};
  ristretto255::Element public_share{};         // K_i
  ristretto255::Element second_public_share{};  // S_i
};

struct Descriptor {
  RegistrationVersion version{};
  // The account's registration epoch, >= 1: higher than every epoch any of
  // the realms has seen for the account (they refuse others), so a newer
  // registration always has the higher epoch.
  uint64_t epoch = 1;
  // The commitment this registration replaces; zeros if the client knows
  // none (first registration, or a client that lost its state).
  std::array<uint8_t, 32> previous_commitment{};
  int t = 0;
  uint32_t advertised_limit = 0;
  uint32_t per_realm_limit = 0;
  Argon2idParams ksf;
  ristretto255::Element public_key{};         // K
  ristretto255::Element second_public_key{};  // S
  std::vector<DescriptorRealm> realms;        // Shamir index = position + 1
  std::array<uint8_t, 32> wrapped_hash{};
  std::array<uint8_t, 32> commit_hash{};

  static absl::StatusOr<Descriptor> Parse(std::span<const uint8_t> bytes);
  // Parse without the dealing check (K_i and S_i on their polynomials, the
  // costly part). Only for bytes a realm accepted with Parse at Prepare and
  // read back from its own HSM-sealed record, whose seal is the integrity
  // check (docs/threshold.md, "Recovery reads the sealed descriptor");
  // never for bytes from the wire.
  static absl::StatusOr<Descriptor> ParseSealed(std::span<const uint8_t> bytes);
  std::vector<uint8_t> Serialize() const;
  std::array<uint8_t, 32> Commitment() const;
};

// Whether the descriptor names exactly the client's pinned realm set: the
// same t and L, and the same realm ids with the same identity keys in the
// same order. A descriptor that t realms agree on but that names another
// set (a realm swapped in, keys replaced) is refused with
// FAILED_PRECONDITION naming the first difference.
absl::Status CheckMatchesRealmSet(const Descriptor& descriptor,
                                  const RealmSet& set);

// Which of a realm's two secret shares CheckShare checks.
enum class ShareKind { kKey, kSecond };  // k_i against K_i, s_i against S_i

// Whether `share` is the one the descriptor commits to at `position`
// (0-based): share * G equals K_i or S_i. A realm checks its prepared shares
// with it; a client checks each released s_i, so a bad share is that
// realm's fault, never a wrong password. FAILED_PRECONDITION naming the
// realm otherwise.
absl::Status CheckShare(const Descriptor& descriptor, size_t position,
                        ShareKind kind, const SecretBytes& share);

}  // namespace bkv::threshold

#endif  // BKV_CRYPTO_THRESHOLD_DESCRIPTOR_H_
