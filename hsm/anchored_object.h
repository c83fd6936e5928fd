#ifndef BKV_HSM_ANCHORED_OBJECT_H_
#define BKV_HSM_ANCHORED_OBJECT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {

// A small value kept inside the token, where only the user PIN reaches it:
// a private CKO_DATA token object, authenticated with HMAC-SHA512 under a
// sensitive, non-extractable token key, so a value changed outside the
// token's API (edited token files, an object from another token) fails Read.
//
//   CKA_VALUE = gen u64 BE || value || HMAC-SHA512(mac key, label || 0x00 ||
//                                                 gen || value)
//
// Tokens may refuse to change a data object's CKA_VALUE (SoftHSM does), so
// Write creates the next generation and then destroys the previous one; a
// crash between leaves two, and Read takes the higher generation. The key
// and the first object are created by the first Write. Thread-compatible:
// callers serialise Write.
class AnchoredObject {
 public:
  static constexpr size_t kMacSize = 64;

  static absl::StatusOr<std::unique_ptr<AnchoredObject>> Open(
      std::shared_ptr<Pkcs11Hsm> hsm, absl::string_view label,
      absl::string_view mac_label);

  // nullopt when neither the object nor its key exist yet. DataLoss when the
  // MAC fails, FailedPrecondition when only one of the two exists.
  absl::StatusOr<std::optional<std::vector<uint8_t>>> Read();
  absl::Status Write(std::span<const uint8_t> value);

 private:
  AnchoredObject(std::shared_ptr<Pkcs11Hsm> hsm, std::string label,
                 std::string mac_label)
      : hsm_(std::move(hsm)),
        label_(std::move(label)),
        mac_label_(std::move(mac_label)) {}
  absl::Status Find(Pkcs11Hsm::Session& session);
  absl::Status CheckOurs(Pkcs11Hsm::Session& session);
  // The object holding exactly `stored`, if a failed create made it; else
  // `failure`.
  absl::StatusOr<CK_OBJECT_HANDLE> FindWritten(Pkcs11Hsm::Session& session,
                                               std::span<const uint8_t> stored,
                                               const absl::Status& failure);
  absl::StatusOr<std::vector<uint8_t>> Mac(Pkcs11Hsm::Session& session,
                                           std::span<const uint8_t> body);
  // The verified generation and value of one object.
  absl::StatusOr<std::pair<uint64_t, std::vector<uint8_t>>> Load(
      Pkcs11Hsm::Session& session, CK_OBJECT_HANDLE object);
  absl::StatusOr<CK_OBJECT_HANDLE> Create(Pkcs11Hsm::Session& session,
                                          std::span<const uint8_t> stored);
  absl::StatusOr<CK_OBJECT_HANDLE> CreateDirect(Pkcs11Hsm::Session& session,
                                                std::span<const uint8_t> stored,
                                                bool on_token,
                                                absl::string_view label);
  // Where Create builds the next generation before copying it to the token.
  std::string StagingLabel() const { return label_ + ".staging"; }
  absl::Status CreateKey(Pkcs11Hsm::Session& session);

  std::shared_ptr<Pkcs11Hsm> hsm_;
  const std::string label_, mac_label_;
  CK_OBJECT_HANDLE key_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE object_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE leftover_ = CK_INVALID_HANDLE;  // an older one not destroyed
  uint64_t generation_ = 0;
};

}  // namespace bkv::hsm

#endif  // BKV_HSM_ANCHORED_OBJECT_H_
