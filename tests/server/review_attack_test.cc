// Adversarial review of the vault hardening: attacks from outside, against a
// real bkv-vault process (SoftHSM, RocksDB, gRPC on loopback) and the SDK.
// Cases named *Regression* reproduce a finding and fail while it is open;
// the others pin attacks that held.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "client/vault_client.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {
namespace {

using vault::v1::ErrorDetail;

std::string Str(std::span<const uint8_t> b) { return {b.begin(), b.end()}; }
std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The value of the sample line `name` (exact label set), or -1.
double Sample(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + name.size() + 2));
}

// A tmpfs of `size` at `dir` for the test's lifetime (root only).
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, const std::string& size) : dir_(dir) {
    std::filesystem::create_directories(dir);
    const std::string opts = "size=" + size;
    mounted_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts.c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  // Writes a filler file until the disk is full (bounded by its size).
  void Fill() {
    std::FILE* f = std::fopen((dir_ + "/filler").c_str(), "wb");
    if (f == nullptr) return;
    std::vector<char> block(4096, 'x');
    for (int i = 0; i < (1 << 16); ++i) {
      if (std::fwrite(block.data(), 1, block.size(), f) != block.size()) break;
      if (std::fflush(f) != 0) break;
    }
    std::fclose(f);
  }
  void Free() { std::filesystem::remove(dir_ + "/filler"); }

 private:
  std::string dir_;
  bool mounted_ = false;
};

// ------------------------------------------------------------- the SDK

absl::Status CreatePlaintextClient(const std::string& address) {
  client::VaultOptions o;
  o.address = address;
  o.ksf = {3, 65536, 4};
  o.account_token = [] { return std::string("not-a-real-token"); };
  // Creating a channel connects nowhere; no traffic leaves this test.
  return client::VaultClient::Create(std::move(o)).status();
}

// Finding: the SDK's loopback test (client/vault_client.cc IsLoopbackAddress)
// takes any host *name* starting with "127." for loopback, and looks only at
// the first entry of gRPC's ipv4:/ipv6: address lists, so the bearer token
// goes in plaintext to a remote host without insecure_plaintext.
TEST(ReviewClientAttackTest, PlaintextTokenToDisguisedRemoteHostRegression) {
  for (const std::string address : {
           "127.0.0.1:50051",
           "localhost:50051",
           "[::1]:50051",
           "ipv4:127.0.0.1:50051",
           "ipv4:127.0.0.1:1,127.0.0.2:2",
           "ipv6:[::1]:50051",
           "dns:///localhost:50051",
           "dns:127.0.0.1:50051",
           "unix:/tmp/bkv-review-none.sock",
       }) {
    EXPECT_TRUE(CreatePlaintextClient(address).ok()) << address;
  }
  for (const std::string address : {
           // DNS names that merely start with "127." resolve anywhere.
           "127.0.0.1.invalid:443",
           "dns:///127.attacker.invalid:443",
           // gRPC falls over to the later addresses of a list.
           "ipv4:127.0.0.1:1,192.0.2.1:443",
           "ipv6:[::1]:1,[2001:db8::1]:443",
           // A named DNS server answers what it likes for any name.
           "dns://192.0.2.1/localhost:443",
           "localhost.invalid:443",
           "[::1].invalid:443",
           "ipv4:127.0.0.1:1,",
           "192.0.2.1:443",
       }) {
    const absl::Status s = CreatePlaintextClient(address);
    EXPECT_FALSE(s.ok()) << address
                         << " was taken for loopback: the account token "
                            "would cross the network in plaintext";
  }
}

// ------------------------------------------------------------- the vault

class ReviewAttackTest : public VaultFixture {
 protected:
  struct Login {
    vault::v1::RecoverStartResponse start;
    std::string ke3;
  };
  // RecoverStart with `password`; KE3 computed (wrong password: a dummy).
  Login StartLogin(const std::string& acct, const std::string& password) {
    Login out;
    auto ke1 = client_->opaque().GenerateKE1(SecretBytes::Copy(password));
    EXPECT_TRUE(ke1.ok());
    vault::v1::RecoverStartRequest req;
    req.set_ke1(Str(ke1->ke1.Serialize()));
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(acct));
    EXPECT_TRUE(client_->stub().RecoverStart(&ctx, req, &out.start).ok());
    auto ke3 = client_->opaque().GenerateKE3(std::move(ke1->state),
                                             Bytes(out.start.ke2()));
    out.ke3 = ke3.ok() ? Str(ke3->ke3.Serialize()) : std::string(64, '\x01');
    return out;
  }
  TestClient::Result Finish(const std::string& acct, const Login& l,
                            vault::v1::RecoverFinishResponse* out) {
    vault::v1::RecoverFinishRequest req;
    req.set_ke3(l.ke3);
    req.set_login_state(l.start.login_state());
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, vault_.Token(acct));
    auto s = client_->stub().RecoverFinish(&ctx, req, out);
    return TestClient::ResultOf(s, ctx);
  }
};

// Finding (low): /metrics counts a wrong password on a real account as
// invalid_login, but an unknown account's (fake) finish as nothing, so the
// counters tell a metrics reader whether a probed account exists.
TEST_F(ReviewAttackTest, FakeFinishLooksLikeARealOneInMetricsRegression) {
  const int port = FreePort();
  StartVault({"--metrics-listen", "127.0.0.1:" + std::to_string(port)});
  RegisterOrDie("known", "pw");
  const std::string key = "bkv_attempts_total{outcome=\"invalid_login\"}";
  auto invalid = [&] {
    return std::max(0.0, Sample(HttpGet(port, "/metrics"), key));
  };
  const double before = invalid();
  EXPECT_FALSE(
      client_->Recover(vault_.Token("known"), "known", "bad").result.ok());
  const double after_known = invalid();
  EXPECT_EQ(after_known, before + 1);
  EXPECT_FALSE(
      client_->Recover(vault_.Token("ghost"), "ghost", "bad").result.ok());
  EXPECT_EQ(invalid(), after_known + 1)
      << "an unknown account's wrong guess leaves /metrics untouched";
}

// Finding: RegisterCommit writes the new record first and then shreds and
// audits (server/vault.cc RegisterCommit); when the audit line (or the
// shred) fails, the committed password change is answered UNAVAILABLE /
// VAULT_UNAVAILABLE "refused before counting anything". The SDK repeats it
// (STATE_EXPIRED) or gives up; either way the user is told the change failed
// while the NEW password is active, and spends attempts on the old one.
TEST_F(ReviewAttackTest, FaultAfterCommitIsNotAnsweredAsRefusalRegression) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string dir = vault_.data_dir() + "/auditdisk";
  SmallDisk disk(dir, "256k");
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount tmpfs";
  const std::string audit = dir + "/audit.log";
  StartVault({"--audit-log", audit, "--account-burst", "1000", "--peer-burst",
              "1000"});
  const std::string acct = "changer";
  const std::string token = vault_.Token(acct);
  SecretBytes key = RegisterOrDie(acct, "old");
  auto rec = client_->Recover(token, acct, "old");
  ASSERT_TRUE(rec.result.ok());
  TestClient::Registration reg;
  ASSERT_TRUE(
      client_->StartRegistration(token, acct, "new", &reg, rec.proof).ok());
  vault::v1::RegisterFinishResponse finished;
  ASSERT_TRUE(client_->SendFinish(token, reg.finish, &finished).ok());
  auto commit = client_->CommitRequest(reg, finished, key);
  // The audit disk fills up: drop the room RecoverStart reserved, and pad
  // the log with other accounts' lines until the commit's line no longer
  // fits in its last page (tmpfs allocates by page).
  size_t commit_line = 0;
  {
    std::ifstream in(audit);
    std::string line;
    while (std::getline(in, line)) {
      if (line.find("\"register_commit\"") != std::string::npos) {
        commit_line = line.size() + 1;
      }
    }
  }
  ASSERT_GT(commit_line, 0u);
  auto size = [&] {
    struct stat st;
    EXPECT_EQ(::stat(audit.c_str(), &st), 0);
    return static_cast<size_t>(st.st_size);
  };
  ASSERT_EQ(::truncate(audit.c_str(), static_cast<off_t>(size())), 0);
  for (int i = 0; i < 64 && 4096 - size() % 4096 >= commit_line; ++i) {
    const std::string other = "pad" + std::to_string(i);
    ASSERT_TRUE(client_->Delete(vault_.Token(other)).ok());  // "absent"
  }
  ASSERT_LT(4096 - size() % 4096, commit_line);
  disk.Fill();
  auto r = client_->SendCommit(token, commit);
  disk.Free();
  const auto status = Status(acct);
  if (!r.ok()) {
    ASSERT_TRUE(r.detail.has_value());
    EXPECT_NE(status.registration_id(), reg.start.registration_id())
        << "commit answered " << r.status.error_code() << " reason "
        << r.detail->reason() << " attempt " << r.detail->attempt() << " ("
        << r.status.error_message() << ") but the new password is active";
    // What the user who believes it then does: the old password, counted.
    auto old = client_->Recover(token, acct, "old");
    EXPECT_TRUE(old.result.ok()) << old.result.status.error_message();
  }
}

// Finding (low, availability): Delete of a record that never held a key (a
// PENDING first registration, which needs no authorization) still runs the
// shred: a forced flush + bottommost compaction of the whole store
// (storage/rocksdb_record_store.cc Delete -> Shred). Any user can repeat
// RegisterStart, RegisterFinish, Delete on their own account, two calls a
// second by default, and the vault flushes and compacts every time.
TEST_F(ReviewAttackTest, PendingDeleteForcesNoCompactionRegression) {
  StartVault();
  const std::string acct = "churner";
  const std::string token = vault_.Token(acct);
  // RocksDB numbers table files in creation order: the newest one tells
  // whether anything was flushed or compacted (a few small writes never
  // fill a memtable on their own).
  auto newest_table = [&] {
    long newest = 0;
    for (const auto& e :
         std::filesystem::directory_iterator(vault_.data_dir() + "/records")) {
      if (e.path().extension() == ".sst") {
        newest = std::max(newest, std::stol(e.path().stem().string()));
      }
    }
    return newest;
  };
  const long before = newest_table();
  for (int i = 0; i < 5; ++i) {
    TestClient::Registration reg;
    ASSERT_TRUE(client_->StartRegistration(token, acct, "pw", &reg).ok());
    vault::v1::RegisterFinishResponse out;
    ASSERT_TRUE(client_->SendFinish(token, reg.finish, &out).ok());
    ASSERT_TRUE(client_->Delete(token).ok());  // no key was ever stored
  }
  EXPECT_EQ(newest_table(), before)
      << "each Delete of a keyless PENDING record forced a flush and a "
         "compaction of the store";
}

// Finding (low): vault.proto makes response fields fixed-width "so a
// response's size never depends on its values", but proto3 omits a zero
// scalar: the RecoverStart answer of a known account's last attempt
// (attempts_remaining = 0) is 5 bytes shorter than an unknown account's
// (always limit - 1), so its size on the wire says the account exists.
TEST_F(ReviewAttackTest, LastAttemptAnswerHasTheFakeAnswersSizeRegression) {
  StartVault({"--attempt-limit", "3"});
  RegisterOrDie("sized", "pw");
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(
        client_->Recover(vault_.Token("sized"), "sized", "bad").result.ok());
  }
  const Login last = StartLogin("sized", "bad");
  ASSERT_EQ(last.start.attempts_remaining(), 0u);
  const Login fake = StartLogin("nobody", "bad");
  ASSERT_EQ(fake.start.ke2().size(), last.start.ke2().size());
  EXPECT_EQ(last.start.ByteSizeLong(), fake.start.ByteSizeLong());
}

// Finding (low): GetStatusResponse omitted zero fields, so its size told
// NONE (registration_id 0) from ACTIVE. Every state now answers one size.
TEST_F(ReviewAttackTest, StatusAnswerHasOneSizeInEveryStateRegression) {
  StartVault({"--attempt-limit", "3"});
  const size_t none = Status("sz").ByteSizeLong();
  RegisterOrDie("sz", "pw");
  const auto active = Status("sz");
  ASSERT_EQ(active.status(), vault::v1::RECORD_STATUS_ACTIVE);
  EXPECT_EQ(active.ByteSizeLong(), none);
  vault::v1::RequestResetResponse reset;
  ASSERT_TRUE(client_->RequestReset(vault_.Token("sz"), &reset).ok());
  EXPECT_EQ(Status("sz").ByteSizeLong(), none);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(client_->Recover(vault_.Token("sz"), "sz", "bad").result.ok());
  }
  const auto locked = Status("sz");
  ASSERT_EQ(locked.status(), vault::v1::RECORD_STATUS_LOCKED);
  EXPECT_EQ(locked.attempts_remaining(), 0u);
  EXPECT_EQ(locked.ByteSizeLong(), none);
}

// Held: one login finished by 8 racing RecoverFinish calls releases once.
TEST_F(ReviewAttackTest, RacingFinishesOfOneLoginReleaseOnce) {
  StartVault();
  RegisterOrDie("race", "pw");
  const Login login = StartLogin("race", "pw");
  std::atomic<int> released{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      vault::v1::RecoverFinishResponse out;
      if (Finish("race", login, &out).ok() && !out.sealed_key().empty()) {
        ++released;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(released.load(), 1);
}

// Held: a token-only attacker racing the owner's password change (proofless
// RegisterFinish, Delete, RequestReset from 4 threads) changes nothing; the
// owner's new password is the one that ends up active.
TEST_F(ReviewAttackTest, TokenOnlyRacesAgainstAPasswordChangeChangeNothing) {
  StartVault({"--account-burst", "1000", "--account-per-second", "1000",
              "--peer-burst", "1000", "--peer-per-second", "1000"});
  const std::string acct = "raced";
  const std::string token = vault_.Token(acct);
  SecretBytes key = RegisterOrDie(acct, "old");
  auto rec = client_->Recover(token, acct, "old");
  ASSERT_TRUE(rec.result.ok());
  std::atomic<bool> stop{false};
  std::atomic<int> attacker_wins{0};
  std::vector<std::thread> attackers;
  for (int t = 0; t < 4; ++t) {
    attackers.emplace_back([&, t] {
      TestClient evil(vault_.address(), vault_.public_key());
      for (int i = 0; i < 25 && !stop; ++i) {
        switch ((i + t) % 3) {
          case 0: {
            TestClient::Registration reg;
            if (!evil.StartRegistration(token, acct, "evil", &reg).ok()) break;
            vault::v1::RegisterFinishResponse out;
            if (evil.SendFinish(token, reg.finish, &out).ok()) ++attacker_wins;
            break;
          }
          case 1:
            if (evil.Delete(token).ok()) ++attacker_wins;
            break;
          default: {
            vault::v1::RequestResetResponse out;
            evil.RequestReset(token, &out);
          }
        }
      }
    });
  }
  auto changed = client_->Register(token, acct, "new", key, rec.proof);
  stop = true;
  for (auto& t : attackers) t.join();
  EXPECT_TRUE(changed.ok()) << changed.status.error_message();
  EXPECT_EQ(attacker_wins.load(), 0);
  const auto status = Status(acct);
  EXPECT_EQ(status.status(), vault::v1::RECORD_STATUS_ACTIVE);
  EXPECT_EQ(status.attempts_remaining(), 10u);
  auto mine = client_->Recover(token, acct, "new");
  ASSERT_TRUE(mine.result.ok()) << mine.result.status.error_message();
  EXPECT_EQ(mine.backup_key.Reveal().size(), key.Reveal().size());
  EXPECT_TRUE(std::equal(mine.backup_key.Reveal().begin(),
                         mine.backup_key.Reveal().end(), key.Reveal().begin()));
}

// Held: a proof dies with its registration; after Delete and a new
// registration it authorizes neither a replacement nor a delete.
TEST_F(ReviewAttackTest, ProofDoesNotOutliveItsRegistration) {
  StartVault();
  const std::string acct = "prooftheft";
  const std::string token = vault_.Token(acct);
  RegisterOrDie(acct, "pw1");
  auto rec = client_->Recover(token, acct, "pw1");
  ASSERT_TRUE(rec.result.ok());
  ASSERT_TRUE(client_->Delete(token, rec.proof).ok());
  RegisterOrDie(acct, "pw2");
  auto del = client_->Delete(token, rec.proof);
  EXPECT_EQ(del.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(del.detail.has_value());
  EXPECT_EQ(del.detail->reason(), ErrorDetail::REASON_PROOF_REQUIRED);
  TestClient::Registration reg;
  ASSERT_TRUE(
      client_->StartRegistration(token, acct, "evil", &reg, rec.proof).ok());
  vault::v1::RegisterFinishResponse out;
  auto fin = client_->SendFinish(token, reg.finish, &out);
  ASSERT_TRUE(fin.detail.has_value());
  EXPECT_EQ(fin.detail->reason(), ErrorDetail::REASON_PROOF_REQUIRED);
  EXPECT_TRUE(out.ke2().empty());
  EXPECT_EQ(Status(acct).attempts_remaining(), 10u);
}

// Held: sealed tickets used for another purpose or account don't open:
// a login_state or a proof as registration_state, a proof as login_state,
// and another account's registration_state.
TEST_F(ReviewAttackTest, TicketsDoNotCrossPurposeOrAccount) {
  StartVault();
  const std::string a = "ticket-a", b = "ticket-b";
  RegisterOrDie(a, "pw");
  RegisterOrDie(b, "pw");
  auto rec = client_->Recover(vault_.Token(a), a, "pw");
  ASSERT_TRUE(rec.result.ok());
  const Login login = StartLogin(a, "guess");
  TestClient::Registration reg_b;
  ASSERT_TRUE(client_->StartRegistration(vault_.Token(b), b, "x", &reg_b).ok());
  for (const std::string& state : {login.start.login_state(), rec.proof,
                                   reg_b.start.registration_state()}) {
    TestClient::Registration reg;
    ASSERT_TRUE(
        client_->StartRegistration(vault_.Token(a), a, "evil", &reg, rec.proof)
            .ok());
    reg.finish.set_registration_state(state);
    vault::v1::RegisterFinishResponse out;
    auto r = client_->SendFinish(vault_.Token(a), reg.finish, &out);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << r.status.error_message();
    EXPECT_TRUE(out.ke2().empty());
  }
  Login as_proof = login;
  as_proof.start.set_login_state(rec.proof);
  vault::v1::RecoverFinishResponse out;
  auto r = Finish(a, as_proof, &out);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(out.sealed_key().empty());
}

}  // namespace
}  // namespace bkv::testing
