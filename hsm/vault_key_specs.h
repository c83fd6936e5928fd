#ifndef BKV_HSM_VAULT_KEY_SPECS_H_
#define BKV_HSM_VAULT_KEY_SPECS_H_

// What each of the vault's secret keys is and the attributes it is made
// with, shared by the key ceremony (generation) and the cloning ceremony
// (unwrap on another token). Internal to hsm/.

#include <p11-kit/pkcs11.h>

#include <span>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hsm/key_labels.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {

struct SecretKeySpec {
  absl::string_view label;
  CK_MECHANISM_TYPE gen_mechanism;
  CK_KEY_TYPE key_type;
  CK_ULONG size;
  // What the key may be used for; everything else is off.
  bool encrypt_decrypt;
  bool sign_verify;
  bool wrap_unwrap;
};

inline constexpr SecretKeySpec kSealKeySpec{
    kRecordSealKeyLabel, CKM_AES_KEY_GEN, CKK_AES, 32, true, false, false};
inline constexpr SecretKeySpec kOprfSeedSpec{kOprfSeedLabel,
                                             CKM_GENERIC_SECRET_KEY_GEN,
                                             CKK_GENERIC_SECRET,
                                             64,
                                             false,
                                             true,
                                             false};
inline constexpr SecretKeySpec kAkeWrapKeySpec{
    kAkeWrapKeyLabel, CKM_AES_KEY_GEN, CKK_AES, 32, false, false, true};
inline constexpr const SecretKeySpec* kVaultSecretKeys[] = {
    &kSealKeySpec, &kOprfSeedSpec, &kAkeWrapKeySpec};

// The data objects that complete the AKE key pair (copied as they are: the
// private one is already wrapped by bkv-ake-wrap-v1).
inline constexpr std::pair<absl::string_view, bool> kAkeDataObjects[] = {
    {kAkePrivateLabel, /*private=*/true}, {kAkePublicLabel, false}};

// The attribute template of a vault key, sensitive and CKA_PRIVATE on the
// token either way:
//  - kGenerate (`hsm init`): extractable only under a key the security
//    officer marked CKA_TRUSTED (CKA_WRAP_WITH_TRUSTED), so the cloning
//    ceremony can copy it to another token and nothing else can;
//  - kUnwrap (`hsm import`): not extractable at all.
// Holds the values the attributes point at: not copyable.
class SecretKeyTemplate {
 public:
  enum class Origin { kGenerate, kUnwrap };
  SecretKeyTemplate(const SecretKeySpec& spec, Origin origin);
  SecretKeyTemplate(const SecretKeyTemplate&) = delete;
  SecretKeyTemplate& operator=(const SecretKeyTemplate&) = delete;

  std::span<CK_ATTRIBUTE> attributes() { return attrs_; }

 private:
  CK_OBJECT_CLASS cls_ = CKO_SECRET_KEY;
  CK_KEY_TYPE type_;
  CK_ULONG size_;
  CK_BBOOL yes_ = CK_TRUE, no_ = CK_FALSE;
  CK_BBOOL ed_, sv_, wu_;
  std::vector<CK_ATTRIBUTE> attrs_;
};

// A token data object labelled `label` (CKA_APPLICATION "bkv").
absl::StatusOr<CK_OBJECT_HANDLE> CreateDataObject(
    Pkcs11Hsm::Session& session, absl::string_view label, bool is_private,
    std::span<const uint8_t> value);

// Every bkv object the key ceremony makes, by class and label.
inline constexpr std::pair<CK_OBJECT_CLASS, absl::string_view>
    kAllVaultObjects[] = {
        {CKO_SECRET_KEY, kRecordSealKeyLabel}, {CKO_SECRET_KEY, kOprfSeedLabel},
        {CKO_SECRET_KEY, kAkeWrapKeyLabel},    {CKO_DATA, kAkePrivateLabel},
        {CKO_DATA, kAkePublicLabel},
};

}  // namespace bkv::hsm

#endif  // BKV_HSM_VAULT_KEY_SPECS_H_
