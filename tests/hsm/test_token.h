#ifndef BKV_TESTS_HSM_TEST_TOKEN_H_
#define BKV_TESTS_HSM_TEST_TOKEN_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/secret_bytes.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm::testing {

inline constexpr char kTestLabel[] = "bkv-test";

// A real SoftHSMv2 token in a fresh temporary directory (SOFTHSM2_CONF points
// at it), logged in. Each ctest case runs in its own process, so one token
// per test and the process-wide SOFTHSM2_CONF never clash. The directory is
// removed on destruction.
class TestToken {
 public:
  // with_keys: also run the key ceremony.
  static absl::StatusOr<std::unique_ptr<TestToken>> Create(bool with_keys);
  ~TestToken();

  const std::string& dir() const { return dir_; }
  const SecretBytes& pin() const { return pin_; }
  const std::shared_ptr<Pkcs11Hsm>& hsm() const { return hsm_; }
  TokenOptions options() const;
  // Drops this token's Pkcs11Hsm (and with it the login, if it was the last).
  void CloseHsm() { hsm_.reset(); }

 private:
  std::string dir_;
  SecretBytes pin_;
  std::shared_ptr<Pkcs11Hsm> hsm_;
};

// `token` opened again through the test module `shim` (tests/hsm's
// copy_failing_module.c, which wraps SoftHSMv2 and injects faults): the
// token's own Pkcs11Hsm is closed first, since the shim initialises
// SoftHSM itself, and $BKV_TEST_REAL_MODULE names SoftHSM to it.
absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> OpenThroughShim(
    TestToken& token, const std::string& shim);

// The token a stopped vault keeps in `softhsm_dir` (its --softhsm-dir,
// label "bkv"), logged in with its user PIN file: for tests that take
// something off it as a lost or half-written state would.
absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> OpenVaultToken(
    const std::string& softhsm_dir);
// Destroys every object of `object_class` labelled `label` (for CKO_DATA
// also the slots hsm::AnchoredObject keeps under it); returns how many
// there were.
absl::StatusOr<size_t> DestroyObjects(Pkcs11Hsm& hsm,
                                      CK_OBJECT_CLASS object_class,
                                      absl::string_view label);

// A fresh empty directory under $TMPDIR (or /tmp).
std::string MakeTempDir();
void RemoveTree(const std::string& dir);

}  // namespace bkv::hsm::testing

#endif  // BKV_TESTS_HSM_TEST_TOKEN_H_
