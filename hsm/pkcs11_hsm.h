#ifndef BKV_HSM_PKCS11_HSM_H_
#define BKV_HSM_PKCS11_HSM_H_

#include <p11-kit/pkcs11.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "crypto/secret_bytes.h"

namespace bkv::hsm {

class Module;  // a dlopen'ed, C_Initialize'd PKCS#11 module (pkcs11_hsm.cc)

// Where the token is and how hard to use it.
struct TokenOptions {
  // Path of the PKCS#11 module; empty means SoftHSMv2 (LocateSoftHsmModule).
  std::string module_path;
  std::string token_label = "bkv";
  // Sessions opened on demand, up to this many; each serves one request at a
  // time, so this bounds how many token operations run in parallel.
  size_t max_sessions = 8;
  // How long a request waits for a free session before failing.
  absl::Duration session_wait = absl::Seconds(30);
};

// Finds SoftHSMv2's libsofthsm2.so in the Debian/Ubuntu/Fedora locations.
absl::StatusOr<std::string> LocateSoftHsmModule();

// A logged-in PKCS#11 token, found by label in any module loaded by path.
//
// Guarantees:
//  - every C_* call whose result matters goes through CheckRv
//    (pkcs11_status.h); teardown (C_Logout, C_CloseSession, C_Finalize) is
//    best effort;
//  - the token is looked up by label, never by slot number;
//  - the PIN is used for C_Login and not kept;
//  - requests draw sessions from a pool, so concurrent operations run in
//    parallel on as many sessions as TokenOptions::max_sessions allows.
// Thread-safe. A module loaded by several Pkcs11Hsm objects in one process is
// initialised once and finalised with the last of them. PKCS#11 login state
// is per process: while one Pkcs11Hsm is logged in to a token, another Open of
// the same token in the same process is accepted whatever its PIN
// (CKR_USER_ALREADY_LOGGED_IN).
//
// Not handled yet: a token that goes away under a running process (network
// HSM fail-over) — broken sessions are dropped from the pool, but there is no
// re-login.
//
// Key objects are handles (CK_OBJECT_HANDLE); the operations on them are
// methods of Session. Nothing here knows about users or records.
class Pkcs11Hsm {
 public:
  class Session;

  // Loads the module, finds the token, checks the mechanisms bkv needs and
  // logs in as the user.
  static absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> Open(
      const TokenOptions& options, const SecretBytes& pin);
  // Logs in as the security officer instead, for the few steps only the SO
  // may take (marking a key CKA_TRUSTED). Sessions see public objects only.
  // Fails while the user is logged in to the token in this process.
  static absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> OpenAsSecurityOfficer(
      const TokenOptions& options, const SecretBytes& so_pin);

  // Initialises a fresh token labelled `label` in the first slot holding an
  // uninitialised token (SoftHSM always offers one) and sets its user PIN.
  // AlreadyExists if a token with that label exists.
  static absl::Status InitToken(absl::string_view module_path,
                                absl::string_view label,
                                const SecretBytes& so_pin,
                                const SecretBytes& user_pin);

  // Proves the security officer's PIN with C_Login(CKU_SO) on a session of
  // its own, then logs out. Call it before any Pkcs11Hsm of the same token is
  // open in this process (PKCS#11 allows one user type per application).
  // PermissionDenied names the token on a wrong PIN.
  static absl::Status VerifySoPin(absl::string_view module_path,
                                  absl::string_view label,
                                  const SecretBytes& so_pin);

  // Whether the module has an initialised token labelled `label`; needs no
  // PIN.
  static absl::StatusOr<bool> TokenExists(absl::string_view module_path,
                                          absl::string_view label);

  ~Pkcs11Hsm();
  Pkcs11Hsm(const Pkcs11Hsm&) = delete;
  Pkcs11Hsm& operator=(const Pkcs11Hsm&) = delete;

  // Leases a session from the pool; returned when the Session is destroyed.
  // DeadlineExceeded when none frees up within TokenOptions::session_wait.
  absl::StatusOr<Session> AcquireSession();

  const std::string& module_path() const;
  const std::string& token_label() const { return label_; }
  // "token 'bkv' in /usr/lib/softhsm/libsofthsm2.so": prefix for errors.
  std::string Describe() const;

 private:
  Pkcs11Hsm(std::shared_ptr<Module> module, std::string label, CK_SLOT_ID slot,
            TokenOptions options);
  static absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> OpenAs(
      const TokenOptions& options, const SecretBytes& pin,
      CK_USER_TYPE user_type);
  void Release(CK_SESSION_HANDLE handle, bool broken);

  std::shared_ptr<Module> module_;
  const std::string label_;
  const CK_SLOT_ID slot_;
  const TokenOptions options_;
  // Held open for the object's lifetime: the login lives as long as one
  // session of the application does.
  CK_SESSION_HANDLE login_session_ = CK_INVALID_HANDLE;

  absl::Mutex mu_;
  std::vector<CK_SESSION_HANDLE> idle_ ABSL_GUARDED_BY(mu_);
  size_t open_ ABSL_GUARDED_BY(mu_) = 0;
};

// One pooled session, used by one thread at a time. Move-only; goes back to
// the pool on destruction (or is closed, if the module reported it dead).
class Pkcs11Hsm::Session {
 public:
  Session(Session&& other) noexcept;
  Session& operator=(Session&&) = delete;
  ~Session();

  // CKM_AES_GCM with a 128-bit tag. Returns ciphertext || tag.
  absl::StatusOr<std::vector<uint8_t>> EncryptAesGcm(
      CK_OBJECT_HANDLE key, std::span<const uint8_t> iv,
      std::span<const uint8_t> aad, std::span<const uint8_t> plaintext);
  // Input ciphertext || tag; DataLoss "authentication failed" on a bad tag.
  absl::StatusOr<std::vector<uint8_t>> DecryptAesGcm(
      CK_OBJECT_HANDLE key, std::span<const uint8_t> iv,
      std::span<const uint8_t> aad, std::span<const uint8_t> ciphertext);
  // CKM_SHA512_HMAC: 64 bytes.
  absl::StatusOr<SecretBytes> HmacSha512(CK_OBJECT_HANDLE key,
                                         std::span<const uint8_t> message);
  absl::Status GenerateRandom(std::span<uint8_t> out);
  // CKM_EDDSA without parameters (RFC 8032 pure Ed25519): 64 bytes.
  absl::StatusOr<std::vector<uint8_t>> SignEddsa(
      CK_OBJECT_HANDLE key, std::span<const uint8_t> message);

  // CKM_AES_KEY_WRAP_PAD (RFC 5649).
  absl::StatusOr<std::vector<uint8_t>> WrapKey(CK_OBJECT_HANDLE wrapping_key,
                                               CK_OBJECT_HANDLE key);
  absl::StatusOr<CK_OBJECT_HANDLE> UnwrapKey(
      CK_OBJECT_HANDLE unwrapping_key, std::span<const uint8_t> wrapped,
      std::span<CK_ATTRIBUTE> key_template);
  // CKM_RSA_PKCS_OAEP with SHA-1 and MGF1-SHA-1, the only OAEP parameters
  // SoftHSMv2 2.6 wraps with; the key cloning ceremony (key_clone.h).
  absl::StatusOr<std::vector<uint8_t>> WrapKeyRsaOaep(
      CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key);
  absl::StatusOr<CK_OBJECT_HANDLE> UnwrapKeyRsaOaep(
      CK_OBJECT_HANDLE unwrapping_key, std::span<const uint8_t> wrapped,
      std::span<CK_ATTRIBUTE> key_template);

  absl::StatusOr<CK_OBJECT_HANDLE> GenerateKey(
      CK_MECHANISM_TYPE mechanism, std::span<CK_ATTRIBUTE> key_template);
  // Returns {public key, private key}.
  absl::StatusOr<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>> GenerateKeyPair(
      CK_MECHANISM_TYPE mechanism, std::span<CK_ATTRIBUTE> public_template,
      std::span<CK_ATTRIBUTE> private_template);
  absl::StatusOr<CK_OBJECT_HANDLE> CreateObject(
      std::span<CK_ATTRIBUTE> object_template);
  // C_CopyObject: a new object with `object`'s attributes, changed by
  // `changes` (only attributes the token lets a copy change, e.g. CKA_TOKEN).
  absl::StatusOr<CK_OBJECT_HANDLE> CopyObject(CK_OBJECT_HANDLE object,
                                              std::span<CK_ATTRIBUTE> changes);
  absl::Status DestroyObject(CK_OBJECT_HANDLE object);
  // C_SetAttributeValue of one attribute (only those the token lets an
  // existing object change, e.g. CKA_LABEL of a modifiable data object).
  absl::Status SetAttribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type,
                            std::span<const uint8_t> value);

  // All objects of `object_class` labelled `label` (at most 16).
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(
      CK_OBJECT_CLASS object_class, absl::string_view label);
  // The same, matching attribute `type` (e.g. CKA_APPLICATION) instead.
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjectsWith(
      CK_OBJECT_CLASS object_class, CK_ATTRIBUTE_TYPE type,
      absl::string_view value);
  // Exactly one such object: NotFound names the label and says to run
  // `bkv-vault hsm init`; FailedPrecondition if the label is ambiguous.
  absl::StatusOr<CK_OBJECT_HANDLE> FindObject(CK_OBJECT_CLASS object_class,
                                              absl::string_view label);

  // Reads a public attribute (CKA_VALUE of a public data object, ...).
  absl::StatusOr<std::vector<uint8_t>> GetAttribute(CK_OBJECT_HANDLE object,
                                                    CK_ATTRIBUTE_TYPE type);
  // Reads a secret attribute straight into locked memory.
  absl::StatusOr<SecretBytes> GetSecretAttribute(CK_OBJECT_HANDLE object,
                                                 CK_ATTRIBUTE_TYPE type);
  absl::StatusOr<bool> GetBoolAttribute(CK_OBJECT_HANDLE object,
                                        CK_ATTRIBUTE_TYPE type);

  CK_SESSION_HANDLE handle() const { return handle_; }

 private:
  friend class Pkcs11Hsm;
  Session(Pkcs11Hsm* hsm, CK_SESSION_HANDLE handle)
      : hsm_(hsm), handle_(handle) {}
  absl::StatusOr<std::vector<uint8_t>> Wrap(CK_MECHANISM& mech,
                                            CK_OBJECT_HANDLE wrapping_key,
                                            CK_OBJECT_HANDLE key);
  absl::StatusOr<CK_OBJECT_HANDLE> Unwrap(CK_MECHANISM& mech,
                                          CK_OBJECT_HANDLE unwrapping_key,
                                          std::span<const uint8_t> wrapped,
                                          std::span<CK_ATTRIBUTE> key_template);
  // CheckRv, and remembers whether the session died.
  absl::Status Check(CK_RV rv, absl::string_view function);

  Pkcs11Hsm* hsm_;
  CK_SESSION_HANDLE handle_;
  bool broken_ = false;
};

}  // namespace bkv::hsm

#endif  // BKV_HSM_PKCS11_HSM_H_
