// Fault injection against a real bkv-vault process (issue 20): a full audit
// log disk or a full data disk must never cost a correct password an
// attempt, nor destroy the key. The disks are small tmpfs mounts, so these
// tests need root (they skip otherwise).
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "crypto/key_transport.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {
namespace {

using vault::v1::ErrorDetail;
using vault::v1::RecordStatus;

// A tmpfs of `size` at `dir` for the test's lifetime.
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, const std::string& size) : dir_(dir) {
    std::filesystem::create_directories(dir);
    const std::string opts = "size=" + size + ",mode=0700";
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  // Writes a filler file until the disk is full (bounded by the disk size).
  void Fill() {
    std::FILE* f = std::fopen((dir_ + "/filler").c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string chunk(4096, 'f');
    for (int i = 0; i < 1 << 16; ++i) {
      if (std::fwrite(chunk.data(), 1, chunk.size(), f) != chunk.size()) break;
      if (std::fflush(f) != 0) break;
    }
    std::fclose(f);
  }
  void Free() { std::filesystem::remove(dir_ + "/filler"); }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

class VaultFaultTest : public VaultFixture {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  }
  void TearDown() override {
    client_.reset();
    if (vault_.running()) vault_.Stop();
  }

  static void ExpectVaultFault(const TestClient::Result& r,
                               ErrorDetail::Attempt attempt) {
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << r.status.error_message();
    ASSERT_TRUE(r.detail.has_value()) << r.status.error_message();
    EXPECT_EQ(r.detail->reason(), ErrorDetail::REASON_VAULT_UNAVAILABLE);
    EXPECT_EQ(r.detail->attempt(), attempt);
  }

  // A RecoverFinish the vault could not complete; its login stays open.
  struct HeldFinish {
    vault::v1::RecoverFinishRequest request;
    opaque::ClientLoginFinish login;
  };

  TestClient::Result Finish(const std::string& acct,
                            const vault::v1::RecoverFinishRequest& req,
                            vault::v1::RecoverFinishResponse* resp) {
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(acct));
    auto s = client_->stub().RecoverFinish(&ctx, req, resp);
    return TestClient::ResultOf(s, ctx);
  }

  void ExpectKey(const std::string& acct, const opaque::ClientLoginFinish& l,
                 const vault::v1::RecoverFinishResponse& resp,
                 const SecretBytes& key) {
    auto wrapped = key_transport::Open(
        l.session_key, key_transport::Direction::kRecover, acct,
        std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(resp.sealed_key().data()),
            resp.sealed_key().size()));
    ASSERT_TRUE(wrapped.ok()) << wrapped.status();
    auto got = key_transport::UnwrapBackupKey(l.export_key, acct, *wrapped);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(*got == key);
  }

  // Correct-password recoveries while the fault lasts: each one succeeds,
  // is refused before counting, or (refused at RecoverFinish) is held to be
  // repeated. Returns how many were refused.
  int RecoverUnderFault(const std::string& acct, const SecretBytes& key,
                        int tries, std::vector<HeldFinish>* held) {
    int refused = 0;
    for (int i = 0; i < tries; ++i) {
      auto ke1 = client_->opaque().GenerateKE1(
          SecretBytes::Copy(std::string_view("pw")));
      auto ke1_bytes = ke1->ke1.Serialize();
      vault::v1::RecoverStartRequest start;
      start.set_ke1(std::string(ke1_bytes.begin(), ke1_bytes.end()));
      vault::v1::RecoverStartResponse started;
      grpc::ClientContext ctx;
      TestClient::Authorize(ctx, vault_.Token(acct));
      auto s = client_->stub().RecoverStart(&ctx, start, &started);
      if (!s.ok()) {
        ++refused;
        ExpectVaultFault(TestClient::ResultOf(s, ctx),
                         ErrorDetail::ATTEMPT_NOT_COUNTED);
        continue;
      }
      auto ke3 = client_->opaque().GenerateKE3(
          std::move(ke1->state),
          std::span<const uint8_t>(
              reinterpret_cast<const uint8_t*>(started.ke2().data()),
              started.ke2().size()));
      if (!ke3.ok()) {
        ADD_FAILURE() << ke3.status();
        continue;
      }
      auto ke3_bytes = ke3->ke3.Serialize();
      vault::v1::RecoverFinishRequest req;
      req.set_ke3(std::string(ke3_bytes.begin(), ke3_bytes.end()));
      req.set_login_state(started.login_state());
      vault::v1::RecoverFinishResponse resp;
      auto r = Finish(acct, req, &resp);
      if (r.ok()) {
        ExpectKey(acct, *ke3, resp, key);
        continue;
      }
      ++refused;
      ExpectVaultFault(r, ErrorDetail::ATTEMPT_SPENT);
      held->push_back({req, *std::move(ke3)});
    }
    return refused;
  }

  // One correct-password recovery under random faults: 0 on success, 1 when
  // refused (any code; a refused RecoverFinish whose login stays open is
  // held to be repeated).
  int possibly_spent_ = 0;  // refused starts that could not rule a count out

  int RecoverTolerant(const std::string& acct, const SecretBytes& key,
                      std::vector<HeldFinish>* held) {
    auto ke1 = client_->opaque().GenerateKE1(
        SecretBytes::Copy(std::string_view("pw")));
    auto ke1_bytes = ke1->ke1.Serialize();
    vault::v1::RecoverStartRequest start;
    start.set_ke1(std::string(ke1_bytes.begin(), ke1_bytes.end()));
    vault::v1::RecoverStartResponse started;
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(acct));
    auto s = client_->stub().RecoverStart(&ctx, start, &started);
    if (!s.ok()) {
      auto r = TestClient::ResultOf(s, ctx);
      // Every refusal says what it did to the counter.
      EXPECT_TRUE(r.detail.has_value()) << s.error_message();
      if (r.detail && r.detail->attempt() != ErrorDetail::ATTEMPT_NOT_COUNTED) {
        ++possibly_spent_;
      }
      return 1;
    }
    auto ke3 = client_->opaque().GenerateKE3(
        std::move(ke1->state),
        std::span<const uint8_t>(
            reinterpret_cast<const uint8_t*>(started.ke2().data()),
            started.ke2().size()));
    if (!ke3.ok()) {
      ADD_FAILURE() << ke3.status();
      return 1;
    }
    auto ke3_bytes = ke3->ke3.Serialize();
    vault::v1::RecoverFinishRequest req;
    req.set_ke3(std::string(ke3_bytes.begin(), ke3_bytes.end()));
    req.set_login_state(started.login_state());
    vault::v1::RecoverFinishResponse resp;
    auto r = Finish(acct, req, &resp);
    if (r.ok()) {
      ExpectKey(acct, *ke3, resp, key);
      return 0;
    }
    // Refused with the attempt still counted: the login stays open.
    if (r.status.error_code() == grpc::StatusCode::UNAVAILABLE && r.detail &&
        r.detail->attempt() == ErrorDetail::ATTEMPT_SPENT) {
      held->push_back({req, *std::move(ke3)});
    }
    return 1;
  }

  // After the fault: a held finish, repeated, completes (bounded retries
  // while the store resumes writing).
  // `ambiguous`: a held finish may have reached the disk after all (its
  // write failed with an I/O error and was replayed at restart); then its
  // login is closed and the counter already reset.
  void CompleteHeld(const std::string& acct, const SecretBytes& key,
                    std::vector<HeldFinish>& held, bool ambiguous = false) {
    for (auto& h : held) {
      vault::v1::RecoverFinishResponse resp;
      TestClient::Result r;
      for (int i = 0; i < 300; ++i) {
        r = Finish(acct, h.request, &resp);
        if (r.status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (ambiguous && r.detail &&
          r.detail->reason() == ErrorDetail::REASON_STATE_EXPIRED) {
        continue;
      }
      ASSERT_TRUE(r.ok()) << r.status.error_message();
      ExpectKey(acct, h.login, resp, key);
    }
  }

  // Nothing spent (beyond `announced` answers that said the attempt was
  // possibly spent), the key intact and released.
  void ExpectNoAttemptLost(const std::string& acct, const SecretBytes& key,
                           int faults, int announced = 0) {
    auto s = Status(acct);
    EXPECT_EQ(s.status(), RecordStatus::RECORD_STATUS_ACTIVE);
    const int lost = static_cast<int>(s.attempt_limit()) -
                     static_cast<int>(s.attempts_remaining());
    std::printf("faults injected: %d, attempts lost: %d (announced: %d)\n",
                faults, lost, announced);
    EXPECT_LE(lost, announced);
    TestClient::Recovery rec;
    for (int i = 0; i < 300; ++i) {  // refused before counting while resuming
      rec = client_->Recover(vault_.Token(acct), acct, "pw");
      if (rec.result.status.error_code() != grpc::StatusCode::UNAVAILABLE) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(rec.result.ok()) << rec.result.status.error_message();
    EXPECT_TRUE(rec.backup_key == key);
    EXPECT_EQ(Status(acct).attempts_remaining(), s.attempt_limit());
  }

  // Why libfiu can't run here ("" when it can).
  static std::string FiuUnavailable() {
#if defined(__SANITIZE_ADDRESS__)
    // fiu-run preloads libfiu ahead of the ASan runtime, which ASan refuses;
    // the release build runs these tests.
    return "libfiu's LD_PRELOAD cannot precede the ASan runtime";
#endif
    if (::access("/usr/bin/fiu-run", X_OK) != 0 ||
        ::access("/usr/bin/fiu-ctrl", X_OK) != 0) {
      return "needs fiu-utils (scripts/install-deps.sh)";
    }
    return "";
  }
  // The vault under fiu-run: libfiu's POSIX wrappers, controlled by FiuCtrl.
  void StartUnderFiu() {
    vault_.set_wrapper({"/usr/bin/fiu-run", "-x", "-f", FiuFifo()});
    StartVault({"--account-burst", "1000", "--account-per-second", "1000",
                "--guess-burst", "1000", "--guess-per-second", "1000"});
  }
  std::string FiuFifo() const { return vault_.data_dir() + "/fiu"; }
  void FiuCtrl(const std::string& cmd) {
    const std::string line = "/usr/bin/fiu-ctrl -f '" + FiuFifo() + "' -c '" +
                             cmd + "' " + std::to_string(vault_.pid());
    ASSERT_EQ(std::system(line.c_str()), 0) << line;
  }
  // A fault may have stopped the store: the operator restarts the vault.
  void RestartWithoutFiu() {
    client_.reset();
    vault_.Stop();
    vault_.set_wrapper({});
    StartVault();
  }
};

TEST_F(VaultFaultTest, FullAuditLogDiskNeverCostsAnAttempt) {
  const std::string dir = vault_.data_dir() + "/auditdisk";
  SmallDisk disk(dir, "256k");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount tmpfs: " << disk.error();
  StartVault({"--audit-log", dir + "/audit.log", "--account-burst", "1000",
              "--account-per-second", "1000", "--guess-burst", "1000",
              "--guess-per-second", "1000"});
  const std::string acct = "audited";
  SecretBytes key = RegisterOrDie(acct, "pw");
  // Registering reserved room past the log's end (Ready); drop it, so the
  // full disk meets the log itself.
  const std::string log = dir + "/audit.log";
  ASSERT_EQ(::truncate(log.c_str(),
                       static_cast<off_t>(std::filesystem::file_size(log))),
            0);
  disk.Fill();
  std::vector<HeldFinish> held;
  const int refused = RecoverUnderFault(acct, key, 12, &held);  // > limit
  EXPECT_EQ(refused, 12);
  EXPECT_TRUE(held.empty());  // refused before counting, every time
  disk.Free();
  ExpectNoAttemptLost(acct, key, refused);
  // The log parses: whole lines only.
  std::ifstream in(dir + "/audit.log");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    ++lines;
    EXPECT_EQ(line.front(), '{');
    EXPECT_EQ(line.back(), '}');
  }
  EXPECT_GE(lines, 3);
}

TEST_F(VaultFaultTest, FullDataDiskNeverCostsAnAttempt) {
  const std::string dir = vault_.data_dir() + "/records";
  // Smaller than RocksDB's WAL preallocation, so WAL appends meet the full
  // disk. Below 64 MiB free RocksDB won't clear the error by itself: after
  // freeing space the operator restarts the vault (docs/operations.md).
  SmallDisk disk(dir, "24m");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount tmpfs: " << disk.error();
  StartVault({"--account-burst", "1000", "--account-per-second", "1000",
              "--guess-burst", "1000", "--guess-per-second", "1000"});
  const std::string acct = "stored";
  SecretBytes key = RegisterOrDie(acct, "pw");
  disk.Fill();
  std::vector<HeldFinish> held;
  const int refused = RecoverUnderFault(acct, key, 12, &held);
  EXPECT_GT(refused, 0);
  disk.Free();
  client_.reset();
  vault_.Stop();  // its exit code may report the store's error
  StartVault();
  std::printf("finishes held open and repeated: %zu\n", held.size());
  CompleteHeld(acct, key, held);
  ExpectNoAttemptLost(acct, key, refused);
}

// libfiu fails a random share of the vault process's write(2) and
// fdatasync(2) calls (RocksDB's WAL, the audit log, the logs) while a correct
// password keeps recovering. Whatever fails, no attempt may be lost.
TEST_F(VaultFaultTest, RandomWriteAndSyncFaultsCostNoUnannouncedAttempt) {
  if (auto why = FiuUnavailable(); !why.empty()) GTEST_SKIP() << why;
  StartUnderFiu();
  const std::string acct = "shaken";
  SecretBytes key = RegisterOrDie(acct, "pw");
  auto ctrl = [&](const std::string& cmd) { FiuCtrl(cmd); };
  ctrl("enable_random name=posix/io/rw/write,probability=0.02");
  ctrl("enable_random name=posix/io/sync/fdatasync,probability=0.02");
  int ok = 0, refused = 0;
  std::vector<HeldFinish> held;
  for (int i = 0; i < 40; ++i) {
    std::vector<HeldFinish> one;
    const int r = RecoverTolerant(acct, key, &one);
    ok += r == 0;
    refused += r != 0;
    if (r == 0) held.clear();  // a success closes every open login
    for (auto& h : one) held.push_back(std::move(h));
  }
  ctrl("disable name=posix/io/rw/write");
  ctrl("disable name=posix/io/sync/fdatasync");
  RestartWithoutFiu();
  std::printf("recoveries ok: %d, refused: %d, finishes held open: %zu\n", ok,
              refused, held.size());
  CompleteHeld(acct, key, held, /*ambiguous=*/true);
  // An I/O error on the counting write itself is ambiguous (RocksDB may
  // replay it at restart): such refusals say "possibly spent", and only
  // those may have cost an attempt.
  ExpectNoAttemptLost(acct, key, refused, possibly_spent_);
}

// Regression: RandomWriteAndSyncFaults failed about 1 run in 10 with "lost=1
// vs announced=0". libfiu failed the fdatasync of RocksDB's WAL with EROFS
// (one of the errnos it picks); the store reported "read-only", a refusal
// before writing, so RecoverStart said ATTEMPT_NOT_COUNTED, yet the counting
// write's log entry was in the file and the restart replayed it. Here the
// counting write's sync fails with EROFS every time.
TEST_F(VaultFaultTest, FailedSyncOfTheCountingWriteIsAnnounced) {
  if (auto why = FiuUnavailable(); !why.empty()) GTEST_SKIP() << why;
  StartUnderFiu();
  const std::string acct = "unsynced";
  SecretBytes key = RegisterOrDie(acct, "pw");
  FiuCtrl("enable name=posix/io/sync/fdatasync,failinfo=" +
          std::to_string(EROFS));
  std::vector<HeldFinish> held;
  EXPECT_EQ(RecoverTolerant(acct, key, &held), 1);
  FiuCtrl("disable name=posix/io/sync/fdatasync");
  EXPECT_EQ(possibly_spent_, 1);  // "possibly spent", not "not counted"
  EXPECT_TRUE(held.empty());
  // Until the restart the store refuses writes before they reach its log
  // (or has resumed): refused before counting, or served.
  const int refused = RecoverUnderFault(acct, key, 2, &held);
  RestartWithoutFiu();
  std::printf("refused while stopped: %d\n", refused);
  CompleteHeld(acct, key, held);
  ExpectNoAttemptLost(acct, key, 1 + refused, possibly_spent_);
}

}  // namespace
}  // namespace bkv::testing
