#ifndef BKV_TESTS_CLIENT_VAULT_TEST_SUPPORT_H_
#define BKV_TESTS_CLIENT_VAULT_TEST_SUPPORT_H_

// Shared by the client's vault tests: whether the vault under test has the
// protocol v2 server half the client checks against.

#include <chrono>

#include "tests/server/vault_harness.h"

namespace bkv::testing {

// True when the vault answers GetVaultInfo (protocol v2).
inline bool SpeaksV2(const VaultProcess& vault) {
  TestClient raw(vault.address(), vault.public_key());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  vault::v1::GetVaultInfoResponse resp;
  return raw.stub()
             .GetVaultInfo(&ctx, vault::v1::GetVaultInfoRequest(), &resp)
             .error_code() != grpc::StatusCode::UNIMPLEMENTED;
}

// True when the vault implements RequestReset (and with it proofs,
// registration ids and ErrorDetail.attempt: the vault-core server half).
inline bool HasProofOrDelay(const VaultProcess& vault) {
  TestClient raw(vault.address(), vault.public_key());
  grpc::ClientContext ctx;
  TestClient::Authorize(ctx, vault.Token("probe-for-request-reset"));
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  vault::v1::RequestResetResponse resp;
  return raw.stub()
             .RequestReset(&ctx, vault::v1::RequestResetRequest(), &resp)
             .error_code() != grpc::StatusCode::UNIMPLEMENTED;
}

}  // namespace bkv::testing

#define BKV_SKIP_UNLESS_V2(vault)                                           \
  if (!::bkv::testing::SpeaksV2(vault))                                     \
  GTEST_SKIP() << "this bkv-vault answers GetVaultInfo UNIMPLEMENTED: the " \
                  "server half (branches vault-edge/vault-core) is missing"

#define BKV_SKIP_UNLESS_PROOF_OR_DELAY(vault)                               \
  if (!::bkv::testing::HasProofOrDelay(vault))                              \
  GTEST_SKIP() << "this bkv-vault answers RequestReset UNIMPLEMENTED: the " \
                  "server half of proof-or-delay (branch vault-core) is "   \
                  "missing"

#endif  // BKV_TESTS_CLIENT_VAULT_TEST_SUPPORT_H_
