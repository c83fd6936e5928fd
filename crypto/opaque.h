#ifndef BKV_CRYPTO_OPAQUE_H_
#define BKV_CRYPTO_OPAQUE_H_

// OPAQUE-3DH, RFC 9807, configuration ristretto255-SHA512:
//   OPRF ristretto255-SHA512 (RFC 9497, mode 0x00), KDF HKDF-SHA512,
//   MAC HMAC-SHA512, Hash SHA-512, Group ristretto255, KSF pluggable
//   (Argon2id in production).
//
// Wire messages, byte-identical to the RFC (all elements 32 bytes):
//
//   RegistrationRequest (32)  | blinded_message 32 |
//   RegistrationResponse (64) | evaluated_message 32 | server_public_key 32 |
//   RegistrationRecord (192)  | client_public_key 32 | masking_key 64 |
//                             | envelope: nonce 32, auth_tag 64 |
//   KE1 (96)  | blinded_message 32 | client_nonce 32 | client_keyshare 32 |
//   KE2 (320) | evaluated_message 32 | masking_nonce 32 | masked_response 128 |
//             | server_nonce 32 | server_keyshare 32 | server_mac 64 |
//   KE3 (64)  | client_mac 64 |
//
// Errors: parsing fails with InvalidArgument naming the field (wrong length,
// non-canonical or identity element). A wrong password, a tampered KE2 or KE3
// and a bad envelope all fail with the same InvalidLoginError(), so the
// failure is no oracle.
//
// State objects (ClientRegistrationState, ClientLoginState,
// ServerLoginState) are consumed by the call that finishes them.
// OpaqueClient and OpaqueServer are immutable and thread-safe.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "crypto/keyed_hash.h"
#include "crypto/ksf.h"
#include "crypto/random.h"
#include "crypto/ristretto255.h"
#include "crypto/secret_bytes.h"

namespace bkv::opaque {

using ristretto255::Element;

inline constexpr size_t kNn = 32;     // nonce
inline constexpr size_t kNseed = 32;  // key-pair seed
inline constexpr size_t kNh = 64;     // hash output
inline constexpr size_t kNm = 64;     // MAC output
inline constexpr size_t kNx = 64;     // KDF extract output
inline constexpr size_t kNok = 32;    // OPRF private key
inline constexpr size_t kNpk = 32;    // public key
inline constexpr size_t kEnvelopeSize = kNn + kNm;

inline constexpr size_t kRegistrationRequestSize = 32;
inline constexpr size_t kRegistrationResponseSize = 64;
inline constexpr size_t kRegistrationRecordSize = 192;
inline constexpr size_t kKe1Size = 96;
inline constexpr size_t kKe2Size = 320;
inline constexpr size_t kKe3Size = 64;
inline constexpr size_t kServerLoginStateSize = kNm + kNx;

// The single error for every failed login, whatever the cause. It is typed
// by a status payload, so IsInvalidLogin never compares message text.
absl::Status InvalidLoginError();
bool IsInvalidLogin(const absl::Status& status);

using Nonce = std::array<uint8_t, kNn>;
using Mac = std::array<uint8_t, kNm>;

// RFC 9807 §5.1.
struct RegistrationRequest {
  Element blinded_message;

  static absl::StatusOr<RegistrationRequest> Parse(
      std::span<const uint8_t> bytes);
  std::array<uint8_t, kRegistrationRequestSize> Serialize() const;
};

struct RegistrationResponse {
  Element evaluated_message;
  Element server_public_key;

  static absl::StatusOr<RegistrationResponse> Parse(
      std::span<const uint8_t> bytes);
  std::array<uint8_t, kRegistrationResponseSize> Serialize() const;
};

// Stored by the server. masking_key is known to the server by design; the
// record as a whole is stored sealed (storage/).
struct RegistrationRecord {
  Element client_public_key;
  std::array<uint8_t, kNh> masking_key;
  std::array<uint8_t, kEnvelopeSize> envelope;

  static absl::StatusOr<RegistrationRecord> Parse(
      std::span<const uint8_t> bytes);
  std::array<uint8_t, kRegistrationRecordSize> Serialize() const;
};

// RFC 9807 §6.1.
struct KE1 {
  Element blinded_message;
  Nonce client_nonce;
  Element client_public_keyshare;

  static absl::StatusOr<KE1> Parse(std::span<const uint8_t> bytes);
  std::array<uint8_t, kKe1Size> Serialize() const;
};

struct KE2 {
  Element evaluated_message;
  Nonce masking_nonce;
  std::array<uint8_t, kNpk + kEnvelopeSize> masked_response;
  Nonce server_nonce;
  Element server_public_keyshare;
  Mac server_mac;

  static absl::StatusOr<KE2> Parse(std::span<const uint8_t> bytes);
  std::array<uint8_t, kKe2Size> Serialize() const;
};

struct KE3 {
  Mac client_mac;

  static absl::StatusOr<KE3> Parse(std::span<const uint8_t> bytes);
  std::array<uint8_t, kKe3Size> Serialize() const;
};

// Deployment parameters both sides must agree on.
struct Config {
  // RFC 9807 §6.1 context, bound into every transcript.
  std::string context = "bkv OPAQUE v1";
  // When unset, the RFC's defaults apply: the parties' public keys.
  std::optional<std::string> client_identity;
  std::optional<std::string> server_identity;
};

// ---------------------------------------------------------------- client

class ClientRegistrationState {
 public:
  ClientRegistrationState(ClientRegistrationState&&) = default;
  ClientRegistrationState& operator=(ClientRegistrationState&&) = default;

 private:
  friend class OpaqueClient;
  ClientRegistrationState() = default;
  SecretBytes password_;
  SecretBytes blind_;
};

struct ClientRegistrationStart {
  RegistrationRequest request;
  ClientRegistrationState state;
};

struct ClientRegistrationFinish {
  RegistrationRecord record;
  SecretBytes export_key;
};

class ClientLoginState {
 public:
  ClientLoginState(ClientLoginState&&) = default;
  ClientLoginState& operator=(ClientLoginState&&) = default;

 private:
  friend class OpaqueClient;
  ClientLoginState() = default;
  SecretBytes password_;
  SecretBytes blind_;
  SecretBytes client_secret_;
  std::array<uint8_t, kKe1Size> ke1_{};
};

struct ClientLoginStart {
  KE1 ke1;
  ClientLoginState state;
};

struct ClientLoginFinish {
  KE3 ke3;
  SecretBytes session_key;  // 64 bytes, equal to the server's
  SecretBytes export_key;   // 64 bytes, known only to the client
  Element server_public_key;
};

// A threshold login (docs/threshold.md): one blinded password for every
// realm, each realm's own KE1 nonce and key share. Kept (not consumed) until
// dropped, so the client can try other subsets of realms locally.
class ThresholdLoginState {
 public:
  ThresholdLoginState(ThresholdLoginState&&) = default;
  ThresholdLoginState& operator=(ThresholdLoginState&&) = default;

 private:
  friend class OpaqueClient;
  ThresholdLoginState() = default;
  SecretBytes password_;
  SecretBytes blind_;
  std::vector<SecretBytes> client_secrets_;
  std::vector<std::array<uint8_t, kKe1Size>> ke1s_;
};

struct ThresholdLoginStart {
  std::vector<KE1> ke1s;  // one per realm, all with the same blinded_message
  ThresholdLoginState state;
};

// Registration under a key the client dealt itself: one record per realm,
// sharing the envelope nonce (so one export key), one KSF run.
struct ThresholdRegistration {
  std::vector<RegistrationRecord> records;  // in the order of the realm keys
  SecretBytes export_key;
};

// The client side, RFC 9807 §5.2.1-§5.2.3 and §6.2.
class OpaqueClient {
 public:
  // `ksf` and `rng` must outlive the client. If `pinned_server_public_key`
  // is set, a login whose envelope names another server key fails.
  OpaqueClient(Config config, const Ksf& ksf,
               std::optional<Element> pinned_server_public_key = std::nullopt,
               const RandomSource& rng = SystemRandom());

  // §5.2.1
  absl::StatusOr<ClientRegistrationStart> CreateRegistrationRequest(
      SecretBytes password) const;
  // §5.2.3
  absl::StatusOr<ClientRegistrationFinish> FinalizeRegistrationRequest(
      ClientRegistrationState&& state,
      const RegistrationResponse& response) const;
  // §6.2.1
  absl::StatusOr<ClientLoginStart> GenerateKE1(SecretBytes password) const;
  // §6.2.2; any failure, including a malformed KE2, is InvalidLoginError().
  absl::StatusOr<ClientLoginFinish> GenerateKE3(
      ClientLoginState&& state, std::span<const uint8_t> ke2) const;

  // Threshold (docs/threshold.md). The records' OPRF key is `oprf_key`
  // (dealt by the caller, who shares it among the realms afterwards).
  absl::StatusOr<ThresholdRegistration> RegisterWithKey(
      SecretBytes password, const SecretBytes& oprf_key,
      std::span<const Element> realm_public_keys) const;
  absl::StatusOr<ThresholdLoginStart> GenerateThresholdKE1(SecretBytes password,
                                                           size_t realms) const;
  // Finalize and the KSF on the combined evaluation k * B (from
  // threshold::Combine over verified answers): run once per login.
  absl::StatusOr<SecretBytes> ThresholdRandomizedPassword(
      const ThresholdLoginState& state, const Element& combined) const;
  // §6.4.4 for realm `realm` (its position in GenerateThresholdKE1) against
  // its KE2, the envelope pinned to that realm's identity key; every failure
  // is InvalidLoginError().
  absl::StatusOr<ClientLoginFinish> FinishThresholdLogin(
      const ThresholdLoginState& state, size_t realm,
      const SecretBytes& randomized_password, const Element& realm_public_key,
      std::span<const uint8_t> ke2) const;

 private:
  Config config_;
  const Ksf* ksf_;
  std::optional<Element> pinned_server_public_key_;
  const RandomSource* rng_;
};

// ---------------------------------------------------------------- server

// The server's long-term AKE key pair. The private scalar lives in locked
// memory (SecretBytes::Locked).
struct ServerKeyPair {
  SecretBytes private_key;
  Element public_key;

  // Checks the scalar and derives the public key.
  static absl::StatusOr<ServerKeyPair> FromPrivateKey(
      std::span<const uint8_t> private_key);
  static ServerKeyPair Generate();
};

// What the server must remember between KE2 and KE3. It has no identity of
// its own: the vault seals Export() with account, version and expiry and
// hands it to the client, so any node can finish the login.
class ServerLoginState {
 public:
  ServerLoginState(ServerLoginState&&) = default;
  ServerLoginState& operator=(ServerLoginState&&) = default;

  // expected_client_mac (64) || session_key (64).
  SecretBytes Export() &&;
  static absl::StatusOr<ServerLoginState> Import(const SecretBytes& bytes);

 private:
  friend class OpaqueServer;
  ServerLoginState() = default;
  SecretBytes expected_client_mac_;
  SecretBytes session_key_;
};

struct ServerLoginStart {
  KE2 ke2;
  ServerLoginState state;
};

// The server side, RFC 9807 §5.2.2 and §6.3. The OPRF seed is reached only
// through `oprf_seed` (HMAC-SHA512 keyed by the seed; the HSM in the vault).
class OpaqueServer {
 public:
  // `oprf_seed`, `keys` and `rng` must outlive the server.
  OpaqueServer(Config config, const KeyedHash& oprf_seed,
               const ServerKeyPair& keys,
               const RandomSource& rng = SystemRandom());

  // §5.2.2
  absl::StatusOr<RegistrationResponse> CreateRegistrationResponse(
      const RegistrationRequest& request,
      std::span<const uint8_t> credential_identifier) const;
  // §6.3.2
  absl::StatusOr<ServerLoginStart> GenerateKE2(
      const RegistrationRecord& record,
      std::span<const uint8_t> credential_identifier, const KE1& ke1) const;
  // §6.3.2 under an explicit OPRF key: a threshold realm's key share.
  absl::StatusOr<ServerLoginStart> GenerateKE2WithOprfKey(
      const RegistrationRecord& record, const SecretBytes& oprf_key,
      const KE1& ke1) const;
  // §6.3.2.2 / §10.9: the same work and the same sizes for an unknown
  // credential identifier, from a fake record derived from the seed so
  // repeated probes of one identifier stay consistent. The login can never
  // finish.
  absl::StatusOr<ServerLoginStart> GenerateFakeKE2(
      std::span<const uint8_t> credential_identifier, const KE1& ke1) const;
  absl::StatusOr<RegistrationRecord> FakeRecord(
      std::span<const uint8_t> credential_identifier) const;
  // §6.3.2.3; a wrong MAC is InvalidLoginError(). Returns the session key.
  absl::StatusOr<SecretBytes> ServerFinish(ServerLoginState&& state,
                                           const KE3& ke3) const;

  const Element& public_key() const { return keys_->public_key; }

 private:
  Config config_;
  const KeyedHash* oprf_seed_;
  const ServerKeyPair* keys_;
  const RandomSource* rng_;
};

}  // namespace bkv::opaque

#endif  // BKV_CRYPTO_OPAQUE_H_
