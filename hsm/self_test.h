#ifndef BKV_HSM_SELF_TEST_H_
#define BKV_HSM_SELF_TEST_H_

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "hsm/key_ceremony.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {

// One start-up check. `run` returns OK or says what is wrong.
struct SelfTest {
  std::string name;
  std::function<absl::Status()> run;
};

// Runs the checks in order and stops at the first failure, returning
// "self-test 'NAME' failed: ..." with the failure's code. Fail closed: the
// caller must not serve when this is not OK.
absl::Status RunSelfTests(std::span<const SelfTest> tests);

// The token checks, through the token itself:
//  - aes-gcm-kat: CKM_AES_GCM with a session key of known value against
//    McGrew & Viega GCM test case 16 (AES-256, 96-bit IV, AAD), both ways,
//    and a flipped tag must be refused;
//  - hmac-sha512-kat: CKM_SHA512_HMAC with a session key against RFC 4231
//    test case 6;
//  - seal-round-trip: seal/open with the record key, wrong AD refused;
//  - oprf-seed: the seed key answers with a stable 64-byte HMAC;
//  - ake-key-pair: the AKE private scalar's base multiple is the public key.
// Callers append their own (e.g. an OPAQUE vector) before RunSelfTests. `hsm`
// and `keys` must outlive the returned tests.
std::vector<SelfTest> TokenSelfTests(Pkcs11Hsm& hsm, const VaultKeys& keys);

// TokenSelfTests, run.
absl::Status RunTokenSelfTests(Pkcs11Hsm& hsm, const VaultKeys& keys);

}  // namespace bkv::hsm

#endif  // BKV_HSM_SELF_TEST_H_
