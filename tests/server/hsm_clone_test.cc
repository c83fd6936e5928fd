// The key-cloning ceremony through the real `bkv-vault hsm export-request |
// export | import` commands between two SoftHSM tokens, then a real vault on
// the destination token serving records a vault on the source token made;
// pkcs11-tool (OpenSC) gives an independent reading of the imported keys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_split.h"
#include "hsm/key_labels.h"
#include "hsm/pkcs11_hsm.h"
#include "tests/server/command_run.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using CmdRun = CommandResult;

class HsmCloneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = "/tmp/bkv-clone-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    a_ = tmp_ + "/token-a";
    b_ = tmp_ + "/token-b";
    unsetenv("BKV_HSM_PIN");
    unsetenv("BKV_HSM_SO_PIN");
    unsetenv("SOFTHSM2_CONF");
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }

  CmdRun Sh(const std::string& cmd) { return RunShell(cmd, tmp_); }
  CmdRun Vault(const std::string& args) {
    return Sh(std::string("'") + BKV_VAULT_BIN + "' " + args);
  }

  // Source keys by `hsm init`, a transport request from the destination;
  // returns the fingerprint export-request printed.
  std::string InitAndRequest() {
    CmdRun init = Vault("hsm init --softhsm-dir '" + a_ + "'");
    EXPECT_EQ(init.exit_code, 0) << init.err;
    CmdRun req = Vault("hsm export-request --softhsm-dir '" + b_ + "' --out '" +
                       tmp_ + "/req.pem'");
    EXPECT_EQ(req.exit_code, 0) << req.err;
    EXPECT_THAT(req.out, HasSubstr("unwrap only"));
    return LineAfter(req.out, "transport key fingerprint (SHA-256): ");
  }
  CmdRun Export(const std::string& fingerprint) {
    return Vault("hsm export --softhsm-dir '" + a_ + "' --request '" + tmp_ +
                 "/req.pem' --fingerprint " + fingerprint + " --out '" + tmp_ +
                 "/keys.export'");
  }

  std::string tmp_, a_, b_;
};

// pkcs11-tool's "Access:" line for each secret key on token B.
std::map<std::string, std::string> SecretKeyAccess(const std::string& text) {
  std::map<std::string, std::string> access;
  std::string label;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&l, "label:")) {
      label = std::string(absl::StripAsciiWhitespace(l));
    } else if (absl::ConsumePrefix(&l, "Access:")) {
      access[label] = std::string(absl::StripAsciiWhitespace(l));
    }
  }
  return access;
}

TEST_F(HsmCloneTest, VaultOnClonedTokenRecoversWhatTheSourceRegistered) {
  const std::string fingerprint = InitAndRequest();
  ASSERT_EQ(fingerprint.size(), 64u);
  CmdRun exported = Export(fingerprint);
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_THAT(exported.out, HasSubstr("marked trusted"));
  CmdRun imported = Vault("hsm import --softhsm-dir '" + b_ + "' --in '" +
                          tmp_ + "/keys.export'");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_THAT(imported.out, HasSubstr("self-tests: passed"));

  // A vault on token A registers a key, then stops.
  VaultProcess a, b;
  ASSERT_TRUE(a.Start({"--softhsm-dir", a_})) << a.log();
  SecretBytes key = SecretBytes::Random(32);
  {
    TestClient client(a.address(), a.public_key());
    ASSERT_TRUE(
        client.Register(a.Token("alice"), "alice", "pw-alice", key).ok());
  }
  ASSERT_EQ(a.Stop(), 0) << a.log();
  // Node B: the same records (and key check file), its own token.
  for (const auto& e : std::filesystem::directory_iterator(a.data_dir())) {
    if (e.path().filename() == "stderr.log") continue;
    std::filesystem::copy(
        e.path(), b.data_dir() / e.path().filename(),
        std::filesystem::copy_options::recursive |
            std::filesystem::copy_options::overwrite_existing);
  }
  // Token B holds no freshness heads for these records: anchoring them is
  // the security officer's decision (docs/rollback.md), here with no cap
  // since the copy is known to be current.
  CmdRun anchored =
      Vault("rollback reanchor --genesis --dev --data-dir '" +
            std::string(b.data_dir()) + "' --softhsm-dir '" + b_ +
            "' --so-pin-file '" + b_ + "/so.pin' --max-attempts 10");
  ASSERT_EQ(anchored.exit_code, 0) << anchored.out << anchored.err;
  ASSERT_TRUE(b.Start({"--softhsm-dir", b_})) << b.log();
  EXPECT_EQ(b.public_key(), a.public_key());
  TestClient client(b.address(), b.public_key());
  auto recovered = client.Recover(b.Token("alice"), "alice", "pw-alice");
  ASSERT_TRUE(recovered.result.ok()) << recovered.result.status.error_message();
  EXPECT_TRUE(recovered.backup_key == key);
  EXPECT_EQ(b.Stop(), 0);

  // OpenSC's reading of token B: sensitive, and neither extractable nor
  // "never extractable" (it was unwrapped).
  auto module = hsm::LocateSoftHsmModule();
  ASSERT_TRUE(module.ok());
  CmdRun listed =
      Sh("SOFTHSM2_CONF='" + b_ + "/softhsm2.conf' BKV_P11_PIN=$(cat '" + b_ +
         "/user.pin') pkcs11-tool --module '" + *module +
         "' --token-label bkv --login --pin env:BKV_P11_PIN "
         "--list-objects --type secrkey");
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  auto access = SecretKeyAccess(listed.out);
  for (absl::string_view label :
       {hsm::kRecordSealKeyLabel, hsm::kOprfSeedLabel, hsm::kAkeWrapKeyLabel}) {
    SCOPED_TRACE(std::string(label));
    ASSERT_TRUE(access.contains(std::string(label))) << listed.out;
    EXPECT_THAT(access[std::string(label)], HasSubstr("sensitive"));
    EXPECT_THAT(access[std::string(label)], Not(HasSubstr("extractable")));
  }
}

TEST_F(HsmCloneTest, WrongFingerprintExportsNothing) {
  const std::string fingerprint = InitAndRequest();
  std::string wrong = fingerprint;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  CmdRun exported = Export(wrong);
  EXPECT_EQ(exported.exit_code, 1);
  EXPECT_THAT(exported.err, HasSubstr("fingerprint mismatch"));
  EXPECT_FALSE(std::filesystem::exists(tmp_ + "/keys.export"));
  CmdRun missing = Vault("hsm export --softhsm-dir '" + a_ + "' --request '" +
                         tmp_ + "/req.pem' --out '" + tmp_ + "/keys.export'");
  EXPECT_EQ(missing.exit_code, 2);  // a usage error
  EXPECT_THAT(missing.err, HasSubstr("--fingerprint is required"));
}

TEST_F(HsmCloneTest, MissingSoPinIsAClearError) {
  const std::string fingerprint = InitAndRequest();
  // A token configured by hand: the user PIN given, the SO PIN not.
  CmdRun exported =
      Sh("SOFTHSM2_CONF='" + a_ + "/softhsm2.conf' BKV_HSM_PIN=$(cat '" + a_ +
         "/user.pin') '" + BKV_VAULT_BIN + "' hsm export --request '" + tmp_ +
         "/req.pem' --fingerprint " + fingerprint + " --out '" + tmp_ +
         "/keys.export'");
  EXPECT_EQ(exported.exit_code, 1);
  EXPECT_THAT(exported.err, HasSubstr("security officer must approve"));
  EXPECT_THAT(exported.err, HasSubstr("BKV_HSM_SO_PIN"));
  EXPECT_FALSE(std::filesystem::exists(tmp_ + "/keys.export"));
}

TEST_F(HsmCloneTest, ImportIntoATokenWithKeysIsRefused) {
  const std::string fingerprint = InitAndRequest();
  ASSERT_EQ(Export(fingerprint).exit_code, 0);
  CmdRun imported = Vault("hsm import --softhsm-dir '" + a_ + "' --in '" +
                          tmp_ + "/keys.export'");
  EXPECT_EQ(imported.exit_code, 1);
  EXPECT_THAT(imported.err, HasSubstr("import only into a token without"));
}

}  // namespace
}  // namespace bkv::testing
