// `bkv-vault account purge` against a real realm process (docs/threshold.md,
// "Operator purge of one account"; docs/operations.md, "Purging one account
// at a realm"): the realm is stopped, purged and started again, and what a
// client and the data directory see afterwards is checked.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>
#include <vector>

#include "tests/server/command_run.h"
#include "tests/server/threshold_realms.h"

namespace bkv::testing {
namespace {

using vault::v1::ErrorDetail;

constexpr char kPassword[] = "correct horse battery";

class AccountPurgeTest : public ::testing::Test, public ThresholdRealms {
 protected:
  // A short quiet time (the test hook of a --dev vault), so the purge's
  // wait for a quiet record is short; the purge inherits it.
  void SetUp() override {
    setenv("BKV_TEST_PURGE_QUIET_MS", "1000", 1);
    StartRealms(1);
  }
  void TearDown() override { unsetenv("BKV_TEST_PURGE_QUIET_MS"); }
  VaultProcess& Process() { return *realms_[0].process; }
  void StopRealm() {
    realms_[0].client.reset();
    ASSERT_EQ(Process().Stop(), 0);
  }
  int Purge(const std::vector<std::string>& flags, std::string* out) {
    std::vector<std::string> words = {"account", "purge"};
    words.insert(words.end(), flags.begin(), flags.end());
    return Process().RunCommand(words, out);
  }
  // The audit log's lines of event `purge`.
  int PurgeLines() { return AuditLines("\"event\":\"purge\""); }
  int AuditLines(const std::string& needle) {
    const std::string log = Slurp(Process().data_dir() + "/audit.log");
    int n = 0;
    for (size_t at = log.find(needle); at != std::string::npos;
         at = log.find(needle, at + 1)) {
      ++n;
    }
    return n;
  }
  // Stops the realm and returns a bit of the stored record from its middle
  // (sealed: the bytes a copy left in a file would show), which some file
  // of the data directory holds.
  std::string NeedleOfStopped() {
    StopRealm();
    const std::string value = ReadRecordValue(Process().data_dir(), kAccount);
    EXPECT_GT(value.size(), 512u);
    const std::string needle = value.substr(value.size() / 2, 48);
    EXPECT_GT(VaultFixture::FilesContaining(Process().data_dir(), needle), 0);
    return needle;
  }
  void ExpectNoFileHolds(const std::vector<std::string>& needles) {
    for (size_t i = 0; i < needles.size(); ++i) {
      EXPECT_EQ(VaultFixture::FilesContaining(Process().data_dir(), needles[i]),
                0)
          << "version " << i;
    }
  }
};

// An ACTIVE registration purged with the realm stopped: after the restart
// the realm reports NONE at epoch 0, takes a registration at epoch 1 (the
// freshness layer opened the store: no shard reads as rolled back), no file
// of its data directory holds any version of the old record, and the audit
// log has the two `purge` lines keyed by the tag the command printed.
TEST_F(AccountPurgeTest, PurgedActiveRecordLeavesNoTrace) {
  // Review of `purge`, finding 19: every version the record had, the
  // pending one (sealed k_i, s_i, wrapped) as well as the ACTIVE one.
  Sent old = Register(1, kPassword, 10, /*commit=*/false);
  ASSERT_EQ(old.descriptor.epoch, 1u);
  std::vector<std::string> needles = {NeedleOfStopped()};
  ASSERT_TRUE(RestartRealm(0)) << Process().log();
  ASSERT_TRUE(Commit(realms_[0], old.commits[0]).ok());
  ASSERT_EQ(Status(realms_[0]).status(), vault::v1::RECORD_STATUS_ACTIVE);
  needles.push_back(NeedleOfStopped());
  std::string out;
  ASSERT_EQ(Purge({"--account", kAccount, "--yes"}, &out), 0) << out;
  EXPECT_NE(out.find("(ACTIVE, epoch 1, last written"), std::string::npos)
      << out;
  const std::string tag = LineAfter(out, "audit tag ").substr(0, 32);
  ExpectNoFileHolds(needles);
  EXPECT_EQ(PurgeLines(), 2);  // started, purged
  EXPECT_EQ(AuditLines("{\"account\":\"" + tag + "\",\"event\":\"purge\""), 2)
      << tag;
  ASSERT_TRUE(RestartRealm(0)) << Process().log();
  auto st = Status(realms_[0]);
  EXPECT_EQ(st.status(), vault::v1::RECORD_STATUS_NONE);
  EXPECT_EQ(st.epoch(), 0u);
  Sent again = Register(1, "another horse battery", 10, true, true, {},
                        /*epoch=*/1);
  ExpectRecovered(Recover("another horse battery", {0}), again);
  EXPECT_EQ(Process().log().find("freshness_shard_stale"), std::string::npos)
      << Process().log();
}

// The epoch tombstone a Delete leaves after lockout (it refuses every
// Prepare at or below its epoch) is purged, and neither it nor the LOCKED
// version before it stays in a file: a Prepare at epoch 1 is then accepted. A
// joiner whose epoch was pushed out of reach is the same record with a larger
// epoch.
TEST_F(AccountPurgeTest, PurgedTombstoneTakesEpochOneAgain) {
  Register(1, kPassword, /*limit=*/1, true, true, {}, /*epoch=*/5);
  auto guess = GarbageGuess(realms_[0]);
  ASSERT_TRUE(guess.detail.has_value());
  ASSERT_EQ(guess.detail->reason(), ErrorDetail::REASON_LOCKED);
  std::vector<std::string> needles = {NeedleOfStopped()};  // LOCKED
  ASSERT_TRUE(RestartRealm(0)) << Process().log();
  ASSERT_TRUE(realms_[0].client->Delete(realms_[0].token).ok());
  ASSERT_EQ(Status(realms_[0]).epoch(), 5u);  // the tombstone
  Sent low = Register(1, kPassword, 10, false, false, {}, /*epoch=*/1);
  ASSERT_EQ(Prepare(realms_[0], low.prepares[0]).status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  needles.push_back(NeedleOfStopped());  // the tombstone
  std::string out;
  ASSERT_EQ(Purge({"--account", kAccount, "--yes"}, &out), 0) << out;
  EXPECT_NE(out.find("(TOMBSTONE, epoch 5,"), std::string::npos) << out;
  ExpectNoFileHolds(needles);
  EXPECT_EQ(PurgeLines(), 2);
  ASSERT_TRUE(RestartRealm(0)) << Process().log();
  auto st = Status(realms_[0]);
  EXPECT_EQ(st.status(), vault::v1::RECORD_STATUS_NONE);
  EXPECT_EQ(st.epoch(), 0u);
  Sent one = Register(1, "another horse battery", 10, true, true, {},
                      /*epoch=*/1);
  EXPECT_EQ(Status(realms_[0]).epoch(), 1u);
  ExpectRecovered(Recover("another horse battery", {0}), one);
}

// While the realm serves, the purge is refused with its own exit code
// before it opens anything; the account still recovers, and no purge line
// was written.
TEST_F(AccountPurgeTest, PurgeWhileServingIsRefused) {
  Sent sent = Register(1, kPassword);
  std::string out;
  EXPECT_EQ(Purge({"--account", kAccount, "--yes"}, &out), 4) << out;
  EXPECT_NE(out.find("stop it first"), std::string::npos) << out;
  EXPECT_NE(out.find("nothing changed"), std::string::npos) << out;
  EXPECT_EQ(Status(realms_[0]).status(), vault::v1::RECORD_STATUS_ACTIVE);
  ExpectRecovered(Recover(kPassword, {0}), sent);
  EXPECT_EQ(PurgeLines(), 0);
}

// An account without a record (a misspelt id), a purge without --yes (it
// shows what it would purge), one whose --expect-epoch does not match, one
// on a quorum node and one with the test hook on a real token each exit
// with their code and change nothing: the registered account
// still recovers after the restart, and the audit log has no purge line.
TEST_F(AccountPurgeTest, UnknownAccountOrNoConfirmationChangesNothing) {
  Sent sent = Register(1, kPassword);
  StopRealm();
  const std::string before = ReadRecordValue(Process().data_dir(), kAccount);
  std::string out;
  EXPECT_EQ(Purge({"--account", "alicia", "--yes"}, &out), 3) << out;
  EXPECT_NE(out.find("no record for this account"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(Purge({"--account", kAccount}, &out), 2) << out;
  EXPECT_NE(out.find("would purge account 'alice': its record (ACTIVE, epoch "
                     "1, last written"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("--yes"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(
      Purge({"--account", kAccount, "--yes", "--expect-epoch", "9"}, &out), 5)
      << out;
  EXPECT_NE(out.find("is not at the expected epoch 9"), std::string::npos)
      << out;
  // A quorum node: not built, refused before anything is opened.
  out.clear();
  EXPECT_EQ(
      Purge({"--account", kAccount, "--yes", "--freshness-members-file",
             Process().data_dir() + "/members", "--freshness-node-id", "1"},
            &out),
      1)
      << out;
  EXPECT_NE(out.find("endorsement quorum"), std::string::npos) << out;
  // The quiet-time test hook outside a --dev vault on its own token: refused
  // (review of `purge`, finding 8).
  const std::string pin = Process().data_dir() + "/pin";
  { std::ofstream(pin) << "1234\n"; }
  out.clear();
  EXPECT_EQ(
      Purge({"--account", kAccount, "--yes", "--hsm-pin-file", pin}, &out), 2)
      << out;
  EXPECT_NE(out.find("BKV_TEST_PURGE_QUIET_MS is a test hook"),
            std::string::npos)
      << out;
  EXPECT_EQ(ReadRecordValue(Process().data_dir(), kAccount), before);
  EXPECT_EQ(PurgeLines(), 0);
  ASSERT_TRUE(RestartRealm(0)) << Process().log();
  EXPECT_EQ(Status(realms_[0]).status(), vault::v1::RECORD_STATUS_ACTIVE);
  ExpectRecovered(Recover(kPassword, {0}), sent);
}

}  // namespace
}  // namespace bkv::testing
