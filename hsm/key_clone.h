#ifndef BKV_HSM_KEY_CLONE_H_
#define BKV_HSM_KEY_CLONE_H_

// The key-cloning ceremony: the vault's keys copied from a source token to a
// destination token, never in the clear (docs/operations.md, "Adding a vault
// node"):
//
//   destination  CreateTransportKey: an RSA-3072 pair on the token, the
//                private key unwrap-only and non-extractable; the public key
//                leaves as a PEM file with its fingerprint.
//   source (SO)  TrustTransportKey: the security officer imports that public
//                key as CKA_TRUSTED, CKA_WRAP (only an SO may set TRUSTED).
//   source       ExportKeys: each key is wrapped under it (CKM_RSA_PKCS_OAEP);
//                the token refuses any untrusted wrapping key because the keys
//                carry CKA_WRAP_WITH_TRUSTED. The trusted key is then deleted.
//   destination  ImportKeys: unwrapped as sensitive, non-extractable token
//                keys with the same labels, checked against the source's key
//                check values, and the transport pair is deleted.
//
// Export file (text; the wrapped values are useless without the destination
// token's transport private key):
//   bkv-hsm-export v1
//   transport <SHA-256 of the transport key's DER SubjectPublicKeyInfo, hex>
//   wrapped <label> <hex>        x3: the secret keys, RSA-OAEP wrapped
//   object <label> <hex>         x2: the AKE data objects, as stored
//   check <label> <hex>          x3: the key check values (key_ceremony.h)

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hsm/ake_key_pair.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {

inline constexpr CK_ULONG kTransportKeyBits = 3072;

// The destination's transport public key (RSA, big-endian n and e).
struct TransportPublicKey {
  std::vector<uint8_t> modulus;
  std::vector<uint8_t> exponent;

  // PEM "PUBLIC KEY" (SubjectPublicKeyInfo), readable by `openssl pkey`.
  absl::StatusOr<std::string> ToPem() const;
  static absl::StatusOr<TransportPublicKey> FromPem(absl::string_view pem);
  // SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex: what the
  // operator compares between the two machines
  // (`openssl pkey -pubin -outform DER | sha256sum` gives the same).
  absl::StatusOr<std::string> FingerprintHex() const;
};

// Destination: makes a fresh transport pair (replacing an earlier one, which
// voids exports made for it). AlreadyExists if the token holds any vault key:
// import only into a token without keys.
absl::StatusOr<TransportPublicKey> CreateTransportKey(Pkcs11Hsm& destination);

// Source, in a security-officer session (Pkcs11Hsm::OpenAsSecurityOfficer):
// stores `key` as the trusted wrapping key, replacing an earlier one.
absl::Status TrustTransportKey(Pkcs11Hsm& source_so,
                               const TransportPublicKey& key);
// The same object with CKA_TRUSTED as given; only an SO session may pass
// true (the token refuses the user). TrustTransportKey is trusted = true;
// false serves to show that the token refuses to wrap under such a key.
absl::Status StoreTransportPublicKey(Pkcs11Hsm& hsm,
                                     const TransportPublicKey& key,
                                     bool trusted);

// Source, as the user: wraps every vault key under the trusted transport key
// (which must be `key`), returns the export file and deletes the trusted key.
// FailedPrecondition when the keys were made non-extractable (a token from
// before the cloning ceremony: re-initialise before going multi-node) or the
// token refuses the wrapping key as untrusted.
absl::StatusOr<std::string> ExportKeys(std::shared_ptr<Pkcs11Hsm> source,
                                       const TransportPublicKey& key);

struct ImportReport {
  std::vector<std::string> labels;
  AkeKeyPair::PublicKey ake_public_key{};
};

// Destination: unwraps the export into token keys, verifies them against the
// source's check values and deletes the transport pair. On any failure the
// objects it created are destroyed again; the transport pair stays so the
// import can be retried.
absl::StatusOr<ImportReport> ImportKeys(std::shared_ptr<Pkcs11Hsm> destination,
                                        absl::string_view export_file);

}  // namespace bkv::hsm

#endif  // BKV_HSM_KEY_CLONE_H_
