// The operator's and the integrator's mistakes, against real bkv-vault
// processes: each is caught with a clear error before it costs an attempt or
// splits clients between two vaults (ctest -R operator).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "tests/server/vault_harness.h"

namespace bkv::testing {
namespace {

using vault::v1::ErrorDetail;

class OperatorTest : public VaultFixture {};

// Sends `req` (RecoverStart or RegisterStart) with alice's token.
template <typename Req, typename Resp, typename Rpc>
TestClient::Result AsAlice(TestClient& client, const VaultProcess& vault,
                           Rpc rpc, const Req& req) {
  Resp resp;
  grpc::ClientContext ctx;
  TestClient::Authorize(ctx, vault.Token("alice"));
  return TestClient::ResultOf((client.stub().*rpc)(&ctx, req, &resp), ctx);
}

// A client holding alice's token but configured for bob: the vault refuses
// before counting, with a reason the client maps to a configuration error.
TEST_F(OperatorTest, TokenForAnotherAccountIsRefusedBeforeCounting) {
  using vault::v1::Vault;
  StartVault();
  RegisterOrDie("alice", "pw");
  const uint32_t before = Status("alice").attempts_remaining();
  vault::v1::RecoverStartRequest recover;
  recover.set_ke1(std::string(96, '\1'));
  recover.set_account("bob");
  vault::v1::RegisterStartRequest reg;
  reg.set_registration_request(std::string(32, '\1'));
  reg.set_account("bob");
  const TestClient::Result results[] = {
      AsAlice<vault::v1::RecoverStartRequest, vault::v1::RecoverStartResponse>(
          *client_, vault_, &Vault::Stub::RecoverStart, recover),
      AsAlice<vault::v1::RegisterStartRequest,
              vault::v1::RegisterStartResponse>(
          *client_, vault_, &Vault::Stub::RegisterStart, reg)};
  for (const auto& r : results) {
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    ASSERT_TRUE(r.detail.has_value());
    EXPECT_EQ(r.detail->reason(), ErrorDetail::REASON_ACCOUNT_MISMATCH);
    EXPECT_EQ(r.detail->attempt(), ErrorDetail::ATTEMPT_NOT_COUNTED);
    EXPECT_EQ(r.status.error_message().find("alice"), std::string::npos)
        << "the token's subject is not echoed";
  }
  EXPECT_EQ(Status("alice").attempts_remaining(), before);
}

// gRPC turns SO_REUSEPORT on by default; a second vault on a busy port
// must not start and take half the clients.
TEST_F(OperatorTest, SecondVaultOnABusyPortExitsNonZero) {
  StartVault();
  VaultProcess second;
  EXPECT_FALSE(second.Start({"--listen", vault_.address()}));
  EXPECT_NE(second.log().find("cannot listen on " + vault_.address()),
            std::string::npos)
      << second.log();
}

TEST_F(OperatorTest, InvalidListenAndMissingValuesAreRefused) {
  VaultProcess v;
  EXPECT_FALSE(v.Start({"--listen", "127.0.0.1:99999"}));
  EXPECT_NE(v.log().find("port from 0 to 65535"), std::string::npos) << v.log();
  EXPECT_FALSE(v.Start({"--config"}));
  // A usage error naming the flag, from the one parser (server/vault_cli.h).
  EXPECT_NE(v.log().find("usage: --config"), std::string::npos) << v.log();
}

// Without --dev the vault makes no token and no issuer of its own.
TEST_F(OperatorTest, ProductionModeNeedsAPinAndIssuerKeys) {
  VaultProcess v;
  v.set_dev(false);
  EXPECT_FALSE(v.Start());
  EXPECT_NE(v.log().find("no HSM PIN"), std::string::npos) << v.log();
  EXPECT_NE(v.log().find("--dev"), std::string::npos) << v.log();
}

// `bkv-vault hsm init --force-new-keys ...` with stdin from /dev/null;
// returns the exit code and fills `out` with stdout and stderr.
int ForceNewKeys(const VaultProcess& v, const std::string& extra,
                 std::string* out) {
  const std::string log = v.data_dir() + "/force.log";
  const std::string cmd = std::string(BKV_VAULT_BIN) +
                          " hsm init --force-new-keys --softhsm-dir '" +
                          v.data_dir() + "/softhsm' --data-dir '" +
                          v.data_dir() + "' " + extra + " </dev/null >'" + log +
                          "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream f(log);
  out->assign((std::istreambuf_iterator<char>(f)), {});
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Destroying the keys is refused while a vault serves the data directory and
// needs confirmation; a second vault on the same directory does not start.
TEST_F(OperatorTest, ForceNewKeysRefusedWhileServingAndNeedsConfirmation) {
  StartVault();
  RegisterOrDie("alice", "pw");
  std::string out;
  EXPECT_NE(ForceNewKeys(vault_, "--yes", &out), 0);
  EXPECT_NE(out.find("is using the data directory"), std::string::npos) << out;
  VaultProcess twin;
  EXPECT_FALSE(twin.Start({"--data-dir", vault_.data_dir()}));
  EXPECT_NE(twin.log().find("is using the data directory"), std::string::npos)
      << twin.log();
  StopVault();
  EXPECT_NE(ForceNewKeys(vault_, "", &out), 0);
  EXPECT_NE(out.find("--yes"), std::string::npos) << out;
  ASSERT_EQ(ForceNewKeys(vault_, "--yes", &out), 0) << out;
  // The records were sealed with the old keys: the vault says so.
  EXPECT_FALSE(vault_.Start());
}

TEST_F(OperatorTest, HealthzFollowsServingAndSighupIsIgnored) {
  const int metrics = FreePort();
  StartVault({"--metrics-listen", "127.0.0.1:" + std::to_string(metrics)});
  EXPECT_NE(HttpGet(metrics, "/healthz").find("200 OK"), std::string::npos);
  ASSERT_EQ(kill(vault_.pid(), SIGHUP), 0);
  // Bounded wait for the log line; the vault must still serve afterwards.
  for (int i = 0;
       i < 100 && vault_.log().find("sighup_ignored") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(vault_.log().find("sighup_ignored"), std::string::npos);
  EXPECT_EQ(kill(vault_.pid(), 0), 0) << "SIGHUP stopped the vault";
  EXPECT_NE(HttpGet(metrics, "/healthz").find("serving"), std::string::npos);
  Status("alice");  // still answers gRPC
}

}  // namespace
}  // namespace bkv::testing
