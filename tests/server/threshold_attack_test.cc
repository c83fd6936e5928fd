// Issue 18's attack tests against three real realm processes
// (docs/threshold.md, "Tests against three realms"): a malicious realm
// (bkv-vault-testrealm), a realm rolled back, known-key, tampered, replayed and
// cross-realm answers, version splits and one realm down at random. Passwords
// tested are counted at the test client: a candidate is tested when the client
// holds t verified evaluations of one blinded element, the least it needs to
// check it.
#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crypto/threshold_oprf.h"
#include "storage/record_codec.h"
#include "tests/server/threshold_realms.h"

namespace bkv::testing {
namespace {

using vault::v1::ErrorDetail;
namespace fs = std::filesystem;

// Loose rate limits: the tests make many calls per second by design.
const std::vector<std::string> kOpenBudgets = {
    "--guess-burst",   "10000", "--guess-per-second",   "10000",
    "--read-burst",    "10000", "--read-per-second",    "10000",
    "--account-burst", "10000", "--account-per-second", "10000",
    "--peer-burst",    "10000", "--peer-per-second",    "10000"};

// What bkv-insider-guess found with a realm's data directory, token and PIN.
struct Insider {
  int tried = -1;
  int confirmed = -1;
  bool share_present = true;
  std::string out;
};

int JsonInt(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  return at == std::string::npos
             ? -1
             : std::atoi(json.c_str() + at + key.size() + 3);
}

// 22 wrong candidates and the right one (the threat model's 23 guesses).
Insider RunInsider(const std::string& data_dir, const std::string& right) {
  const std::string words = data_dir + ".words";
  {
    std::ofstream out(words);
    for (int i = 0; i < 22; ++i) out << "wrong guess " << i << "\n";
    out << right << "\n";
  }
  const std::string cmd = std::string(BKV_INSIDER_BIN) + " --data-dir '" +
                          data_dir + "' --account alice --wordlist '" + words +
                          "' 2>&1";
  Insider got;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, p)) got.out += buf;
    pclose(p);
  }
  fs::remove(words);
  got.tried = JsonInt(got.out, "tried");
  got.confirmed = JsonInt(got.out, "confirmed");
  got.share_present =
      got.out.find("\"share_present\":true") != std::string::npos;
  return got;
}

// SIGSTOP is delivered asynchronously: waits (at most 5 s) until every
// thread of `pid` is stopped, so the realm answers nothing from then on.
bool StopAndWait(pid_t pid) {
  kill(pid, SIGSTOP);
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (int i = 0; i < 500; ++i) {
    bool all = true;
    for (const auto& t : fs::directory_iterator(tasks)) {
      std::ifstream stat(t.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const auto close = line.rfind(')');
      if (close == std::string::npos || line.size() < close + 3 ||
          line[close + 2] != 'T') {
        all = false;
      }
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

class ThresholdAttackTest : public ::testing::Test, public ThresholdRealms {
 protected:
  static constexpr char kPassword[] = "correct horse battery";

  // One RecoverStart at realm `pos` for `ke1` under `commitment`.
  TestClient::Result Start(int pos, const std::string& commitment,
                           const opaque::KE1& ke1,
                           vault::v1::ThresholdRecoverStartResponse* out) {
    vault::v1::ThresholdRecoverStartRequest req;
    req.set_commitment(commitment);
    req.set_realm_id(realms_[pos].id);
    req.set_ke1(Str(ke1.Serialize()));
    return Call(realms_[pos], &vault::v1::Vault::Stub::ThresholdRecoverStart,
                req, out);
  }

  // Closes a counted login with a garbage KE3: a failure the realm counts.
  void CloseWithGarbage(int pos,
                        const vault::v1::ThresholdRecoverStartResponse& a) {
    if (a.login_state().empty()) return;  // the malicious realm issues none
    vault::v1::ThresholdRecoverFinishRequest fin;
    fin.set_ke3(std::string(64, '\0'));
    fin.set_login_state(a.login_state());
    vault::v1::ThresholdRecoverFinishResponse out;
    Call(realms_[pos], &vault::v1::Vault::Stub::ThresholdRecoverFinish, fin,
         &out);
  }

  // The attacker holds realm a (pos 0) and guesses `candidates` through it
  // plus one honest realm each. `revive` brings a back when it refuses
  // (false: give up on a). Returns how many candidates were tested.
  int GuessThroughRealmA(const Sent& sent, int candidates,
                         const std::function<bool()>& revive) {
    const std::string commitment = Str(sent.descriptor.Commitment());
    const auto& opaque = realms_[1].client->opaque();
    int tested = 0;
    for (int i = 0; i < candidates; ++i) {
      auto start = opaque.GenerateThresholdKE1(
          SecretBytes::Copy("guess " + std::to_string(i)), 3);
      const auto blinded = start->ke1s[0].blinded_message;
      vault::v1::ThresholdRecoverStartResponse a;
      if (!Start(0, commitment, start->ke1s[0], &a).ok() &&
          !(revive && revive() &&
            Start(0, commitment, start->ke1s[0], &a).ok())) {
        break;
      }
      vault::v1::ThresholdRecoverStartResponse h;
      int honest = 0;
      for (int pos : {1, 2}) {
        if (Start(pos, commitment, start->ke1s[pos], &h).ok()) {
          honest = pos;
          break;
        }
      }
      if (honest == 0) break;  // both honest realms refuse: the end
      std::vector<threshold::VerifiedPartial> parts;
      for (auto [pos, answer] : {std::pair{0, &a}, std::pair{honest, &h}}) {
        auto ke2 = opaque::KE2::Parse(Bytes(answer->ke2()));
        threshold::PartialEvaluation pe{ke2->evaluated_message, {}};
        std::copy_n(answer->proof().begin(), 64, pe.proof.begin());
        auto v = threshold::VerifyPartial(sent.descriptor, pos, blinded, pe);
        EXPECT_TRUE(v.ok()) << v.status();
        if (v.ok()) parts.push_back(*v);
      }
      if (parts.size() == 2) {
        ++tested;
        auto z = threshold::Combine(parts, 2);
        auto rwd = opaque.ThresholdRandomizedPassword(start->state, *z);
        EXPECT_FALSE(
            opaque
                .FinishThresholdLogin(start->state, honest, *rwd,
                                      realms_[honest].process->public_key(),
                                      Bytes(h.ke2()))
                .ok());
      }
      CloseWithGarbage(honest, h);
      CloseWithGarbage(0, a);
    }
    return tested;
  }

  // A needle from realm `pos`'s stored record (stops and restarts it).
  std::string RecordNeedle(int pos) {
    Realm& r = realms_[pos];
    r.client.reset();
    EXPECT_EQ(r.process->Stop(), 0);
    std::string needle = ReadRecordValue(r.process->data_dir(), kAccount);
    EXPECT_GT(needle.size(), 512u);
    needle = needle.substr(needle.size() / 2, 48);
    EXPECT_TRUE(RestartRealm(pos)) << r.process->log();
    return needle;
  }

  // Checks that realm `pos` is LOCKED and that its registration-time record
  // (with k_i, s_i, wrapped) is in no file of its data directory.
  void ExpectSharesDestroyed(int pos, const std::string& needle) {
    Realm& r = realms_[pos];
    EXPECT_EQ(Status(r).status(), vault::v1::RECORD_STATUS_LOCKED) << r.id;
    r.client.reset();
    EXPECT_EQ(r.process->Stop(), 0);
    EXPECT_EQ(VaultFixture::FilesContaining(r.process->data_dir(), needle), 0)
        << r.id;
    // Opened with the realm's own token and PIN, the record holds no share.
    Insider insider = RunInsider(r.process->data_dir(), kPassword);
    EXPECT_EQ(insider.tried, 23) << insider.out;
    EXPECT_FALSE(insider.share_present) << r.id << ": " << insider.out;
    EXPECT_EQ(insider.confirmed, 0) << insider.out;
  }
};

// Issue 18, "Malicious realm": a answers every evaluation without counting.
// Each candidate still needs one evaluation of b or c, so at most
// (n - t + 1) * G = L candidates are tested; then b and c are LOCKED, their
// shares erased and shredded, and the right password fails too.
TEST_F(ThresholdAttackTest, MaliciousRealmGetsAtMostLGuesses) {
  SetFault(0, "ignore-counter");
  StartRealms(3, kOpenBudgets);
  Sent sent = Register(2, kPassword, /*limit=*/10);
  ASSERT_EQ(Status(realms_[1]).committed_limit(), 5u);
  const std::string needle_b = RecordNeedle(1);
  const std::string needle_c = RecordNeedle(2);
  const int tested = GuessThroughRealmA(sent, 40, nullptr);
  std::cout << "passwords tested with realm a malicious: " << tested << "\n";
  EXPECT_LE(tested, 10);  // L
  EXPECT_EQ(tested, 10);  // and the bound is reached: (n - t + 1) * G
  auto next = Recover(kPassword, {0, 1, 2});
  EXPECT_FALSE(next.result.ok());
  EXPECT_TRUE(std::none_of(
      next.events.begin(), next.events.end(),
      [](const std::string& e) { return e.rfind("ke3:", 0) == 0; }));
  ExpectSharesDestroyed(1, needle_b);
  ExpectSharesDestroyed(2, needle_c);
}

// Realm a's answer was refused before any KE3 and named as a fault; b and c
// recovered, each charged exactly one attempt (G - 1 at its KE1, G again
// after its KE3).
void ExpectExcludedBeforeKe3(ThresholdRealms& realms, const Recovered& got,
                             const Sent& sent) {
  ExpectRecovered(got, sent);
  EXPECT_EQ(got.faults, std::vector<std::string>{"realm-a"});
  const auto& e = got.events;
  auto fault = std::find(e.begin(), e.end(), "fault:realm-a");
  auto first_ke3 = std::find_if(e.begin(), e.end(), [](const std::string& x) {
    return x.rfind("ke3:", 0) == 0;
  });
  EXPECT_TRUE(fault < first_ke3);
  EXPECT_EQ(std::find(e.begin(), e.end(), "ke3:realm-a"), e.end());
  EXPECT_NE(std::find(e.begin(), e.end(), "ke3:realm-b"), e.end());
  EXPECT_NE(std::find(e.begin(), e.end(), "ke3:realm-c"), e.end());
  const uint32_t g = sent.descriptor.per_realm_limit;
  for (int pos : {1, 2}) {
    const std::string& id = realms.realms_[pos].id;
    EXPECT_EQ(got.remaining_at.at(id), g - 1) << id << " charged one";
    EXPECT_EQ(realms.Status(realms.realms_[pos]).attempts_remaining(), g);
  }
}

// A realm that answers with a key it knows (and a valid proof for that key,
// not for its committed share K_a) is refused before any KE3.
TEST_F(ThresholdAttackTest, KnownKeyEvaluationIsRefusedBeforeAnyKe3) {
  SetFault(0, "known-key");
  StartRealms(3);
  Sent sent = Register(2, kPassword);
  ExpectExcludedBeforeKe3(*this, Recover(kPassword, {0, 1, 2}), sent);
}

// A realm that answers garbage is refused the same way.
TEST_F(ThresholdAttackTest, GarbageEvaluationIsRefusedBeforeAnyKe3) {
  SetFault(0, "garbage");
  StartRealms(3);
  Sent sent = Register(2, kPassword);
  ExpectExcludedBeforeKe3(*this, Recover(kPassword, {0, 1, 2}), sent);
}

// Honest realms, a's answer changed on the way (or by a): a flipped proof
// byte, another evaluated element, a's answer from an earlier recovery, and
// b's answer presented as a's. Each is refused before any KE3.
TEST_F(ThresholdAttackTest,
       TamperedReplayedAndCrossRealmEvaluationsAreRefused) {
  StartRealms(3);
  Sent sent = Register(2, kPassword);
  vault::v1::ThresholdRecoverStartResponse earlier_a, earlier_b, this_b;
  auto keep = [&](int pos, vault::v1::ThresholdRecoverStartResponse& r) {
    if (pos == 0) earlier_a = r;
    if (pos == 1) earlier_b = r;
  };
  ExpectRecovered(Recover(kPassword, {0, 1, 2}, keep), sent);
  const std::vector<std::pair<std::string, Tamper>> attacks = {
      {"tampered proof",
       [](int pos, auto& r) {
         if (pos == 0) (*r.mutable_proof())[5] ^= 1;
       }},
      {"another evaluated element",
       [&](int pos, auto& r) {
         if (pos == 0) r.mutable_ke2()->replace(0, 32, earlier_b.ke2(), 0, 32);
       }},
      {"replayed",
       [&](int pos, auto& r) {
         if (pos == 0) r = earlier_a;
       }},
      {"cross-realm",
       [&](int pos, auto& r) {
         if (pos == 1) this_b = r;
         if (pos == 0) r = this_b;
       }},
  };
  for (const auto& [name, tamper] : attacks) {
    SCOPED_TRACE(name);
    // b first, so that its answer of this round exists when a's arrives.
    ExpectExcludedBeforeKe3(*this, Recover(kPassword, {1, 0, 2}, tamper), sent);
  }
}

bool HasEvent(const Recovered& got, const std::string& prefix) {
  return std::any_of(
      got.events.begin(), got.events.end(),
      [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
}

// Issue 18, "Version split": a's Commit of the new version was lost, so a
// is on the old version and b and c on the new. The status round groups
// them; recovery uses the new one and never sends a KE1 to a.
TEST_F(ThresholdAttackTest, VersionSplitRecoversTheVersionHeldByT) {
  StartRealms(3);
  Sent v = Register(2, "old horse battery");
  Recovered before = Recover("old horse battery", {0, 1, 2});
  ASSERT_TRUE(before.result.ok()) << before.result.status.error_message();
  Sent x = Register(2, kPassword, 10, /*commit=*/false, /*send=*/true,
                    before.proofs);
  ASSERT_TRUE(Commit(realms_[1], x.commits[1]).ok());
  ASSERT_TRUE(Commit(realms_[2], x.commits[2]).ok());
  ASSERT_EQ(Status(realms_[0]).commitment(), Str(v.descriptor.Commitment()));
  Recovered got = Recover(kPassword, {0, 1, 2});
  ExpectRecovered(got, x);
  EXPECT_EQ(Str(got.descriptor.Commitment()), Str(x.descriptor.Commitment()));
  EXPECT_FALSE(HasEvent(got, "ke1:realm-a"));
  // The old password is tried against the new version only, and fails.
  Recovered old = Recover("old horse battery", {0, 1, 2});
  EXPECT_EQ(old.result.status.error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_FALSE(HasEvent(old, "ke1:realm-a"));
}

// Issue 18, "Version split", 1:1:1: a on X, b on Y, c on V. No group
// reaches t: nothing is sent beyond the status round and nothing counted.
// And an answer of a's version X does not verify as part of Y: the proof
// binding refuses a combination across versions even if a client tried.
TEST_F(ThresholdAttackTest, OneOneOneSplitNeverCombinesAcrossVersions) {
  StartRealms(3, {"--pending-ttl-s", "1"});
  Sent v = Register(2, "v horse battery");
  Recovered before = Recover("v horse battery", {0, 1, 2});
  ASSERT_TRUE(before.result.ok()) << before.result.status.error_message();
  Sent x = Register(2, "x horse battery", 10, false, true, before.proofs);
  ASSERT_TRUE(Commit(realms_[0], x.commits[0]).ok());            // a on X
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // pending_ttl
  Sent y = Register(2, "y horse battery", 10, false, false, before.proofs);
  ASSERT_TRUE(Prepare(realms_[1], y.prepares[1]).ok());
  ASSERT_TRUE(Commit(realms_[1], y.commits[1]).ok());  // b on Y, c on V
  ASSERT_EQ(Status(realms_[2]).commitment(), Str(v.descriptor.Commitment()));
  for (const char* password :
       {"v horse battery", "x horse battery", "y horse battery"}) {
    Recovered got = Recover(password, {0, 1, 2});
    EXPECT_EQ(got.result.status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_FALSE(HasEvent(got, "ke1:")) << password;
  }
  for (auto& r : realms_) {
    EXPECT_EQ(Status(r).attempts_remaining(), 5u) << r.id << ": counted";
  }
  // a's evaluation for X, checked as Y's share at a's position: refused.
  auto start = realms_[0].client->opaque().GenerateThresholdKE1(
      SecretBytes::Copy("y horse battery"), 3);
  vault::v1::ThresholdRecoverStartResponse a;
  ASSERT_TRUE(
      Start(0, Str(x.descriptor.Commitment()), start->ke1s[0], &a).ok());
  auto ke2 = opaque::KE2::Parse(Bytes(a.ke2()));
  threshold::PartialEvaluation pe{ke2->evaluated_message, {}};
  std::copy_n(a.proof().begin(), 64, pe.proof.begin());
  const auto blinded = start->ke1s[0].blinded_message;
  EXPECT_TRUE(threshold::VerifyPartial(x.descriptor, 0, blinded, pe).ok());
  EXPECT_FALSE(threshold::VerifyPartial(y.descriptor, 0, blinded, pe).ok());
  EXPECT_FALSE(threshold::VerifyPartial(v.descriptor, 0, blinded, pe).ok());
}

// Issue 18, "One realm down": each round SIGKILLs or SIGSTOPs one realm
// chosen at random (seeded; BKV_TEST_SEED repeats a run), recovers through
// the other two, and brings it back. Every tenth round also tries to rotate
// the registration while the realm is down: it aborts before any Prepare,
// so no new version is ever active anywhere, let alone at t realms.
TEST_F(ThresholdAttackTest, OneRealmDownHundredRecoveries) {
  StartRealms(3, kOpenBudgets);
  Sent v = Register(2, kPassword);
  set_deadline(std::chrono::milliseconds(3000));
  set_status_deadline(std::chrono::milliseconds(5000));
  set_status_early(true);
  allow_unreachable(true);
  const char* env = std::getenv("BKV_TEST_SEED");
  const uint32_t seed =
      env ? std::strtoul(env, nullptr, 10) : std::random_device{}();
  std::cout << "one-realm-down seed: " << seed << " (BKV_TEST_SEED)\n";
  std::mt19937 rng(seed);
  int recovered = 0;
  for (int round = 0; round < 100; ++round) {
    const int down = static_cast<int>(rng() % 3);
    const bool stop = rng() % 2 == 0;
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " +
                 std::to_string(round) + (stop ? " SIGSTOP " : " SIGKILL ") +
                 realms_[down].id);
    if (stop) {
      ASSERT_TRUE(StopAndWait(realms_[down].process->pid()));
    } else {
      realms_[down].process->Kill();
    }
    Recovered got = Recover(kPassword, {0, 1, 2});
    if (got.result.ok() && got.s == v.s && got.wrapped == Str(v.wrapped)) {
      ++recovered;
    } else {
      std::string events;
      for (const auto& e : got.events) events += e + " ";
      ADD_FAILURE() << got.result.status.error_message() << "; " << events;
    }
    if (round % 10 == 9) {
      Sent x = Register(2, "rotated horse battery", 10, true, true, got.proofs);
      EXPECT_EQ(x.unreachable, std::vector<std::string>{realms_[down].id});
      EXPECT_TRUE(x.prepares.empty());
    }
    if (stop) {
      kill(realms_[down].process->pid(), SIGCONT);
    } else {
      ASSERT_TRUE(RestartRealm(down)) << realms_[down].process->log();
    }
  }
  EXPECT_EQ(recovered, 100);
  for (auto& r : realms_) {
    auto st = Status(r);
    EXPECT_EQ(st.commitment(), Str(v.descriptor.Commitment())) << r.id;
    EXPECT_TRUE(st.pending_commitment().empty()) << r.id;
  }
}

// Copies a stopped realm's data directory (records, audit log and its
// SoftHSM token with the freshness heads) to `to`, or back.
void CopyTree(const std::string& from, const std::string& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

// Issue 18, "Limit cannot be raised": a's whole data directory, token
// included (a host that rolls back everything, which no freshness anchor on
// that host can catch), is restored to its state before any guess each time
// a stops answering. a is then a realm that counts nothing, and the bound
// is the same: at most L candidates in total.
TEST_F(ThresholdAttackTest, RestoringOneRealmWholeGivesNoExtraGuesses) {
  StartRealms(3, kOpenBudgets);
  Sent sent = Register(2, kPassword, /*limit=*/10);
  Realm& a = realms_[0];
  const std::string snapshot = a.process->data_dir() + ".snapshot";
  a.client.reset();
  ASSERT_EQ(a.process->Stop(), 0);
  CopyTree(a.process->data_dir(), snapshot);
  ASSERT_TRUE(RestartRealm(0)) << a.process->log();
  int restores = 0;
  auto restore = [&] {
    if (++restores > 5) return false;
    a.client.reset();
    a.process->Stop();
    CopyTree(snapshot, a.process->data_dir());
    return RestartRealm(0);
  };
  const int tested = GuessThroughRealmA(sent, 40, restore);
  std::cout << "passwords tested with realm a restored " << restores
            << " times: " << tested << "\n";
  EXPECT_GE(restores, 1);
  EXPECT_LE(tested, 10);
  EXPECT_FALSE(Recover(kPassword, {0, 1, 2}).result.ok());
  EXPECT_EQ(Status(realms_[1]).status(), vault::v1::RECORD_STATUS_LOCKED);
  EXPECT_EQ(Status(realms_[2]).status(), vault::v1::RECORD_STATUS_LOCKED);
  fs::remove_all(snapshot);
}

// Restoring only a's records (its token keeps the freshness heads) is caught
// by a itself: it evaluates nothing for the account after the restore, and
// b and c still recover, each charged one attempt.
TEST_F(ThresholdAttackTest, RestoringOneRealmsRecordsIsRefusedByIt) {
  StartRealms(3, kOpenBudgets);
  Sent sent = Register(2, kPassword, /*limit=*/10);
  Realm& a = realms_[0];
  const std::string records = a.process->data_dir() + "/records";
  const std::string snapshot = a.process->data_dir() + ".records";
  a.client.reset();
  ASSERT_EQ(a.process->Stop(), 0);
  CopyTree(records, snapshot);
  ASSERT_TRUE(RestartRealm(0)) << a.process->log();
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(GarbageGuess(a).ok());
  EXPECT_EQ(Status(a).attempts_remaining(), 2u);
  a.client.reset();
  ASSERT_EQ(a.process->Stop(), 0);
  CopyTree(snapshot, records);
  fs::remove_all(snapshot);
  ASSERT_TRUE(RestartRealm(0)) << a.process->log();
  auto start =
      a.client->opaque().GenerateThresholdKE1(SecretBytes::Copy(kPassword), 3);
  vault::v1::ThresholdRecoverStartResponse out;
  auto res = Start(0, Str(sent.descriptor.Commitment()), start->ke1s[0], &out);
  EXPECT_FALSE(res.ok());
  ASSERT_TRUE(res.detail.has_value()) << res.status.error_message();
  EXPECT_EQ(res.detail->reason(), ErrorDetail::REASON_STORAGE_ROLLED_BACK);
  EXPECT_TRUE(out.ke2().empty());  // nothing evaluated
  Recovered got = Recover(kPassword, {0, 1, 2});
  ExpectRecovered(got, sent);
  EXPECT_FALSE(HasEvent(got, "ke3:realm-a"));
}

// Issue 18, "Insider": realm a's PIN, SoftHSM token directory and storage
// (everything its operator holds) confirm none of 23 candidates offline,
// the right one among them. The same tool on a 1-of-1 realm, whose share is
// the whole key, confirms it: the tool really tries.
TEST_F(ThresholdAttackTest, InsiderOfOneRealmConfirmsNoPassword) {
  StartRealms(3);
  Register(2, kPassword);
  Realm& a = realms_[0];
  a.client.reset();
  ASSERT_EQ(a.process->Stop(), 0);
  Insider insider = RunInsider(a.process->data_dir(), kPassword);
  std::cout << "insider of realm a (2-of-3): " << insider.out;
  EXPECT_EQ(insider.tried, 23) << insider.out;
  EXPECT_TRUE(insider.share_present) << insider.out;
  EXPECT_EQ(insider.confirmed, 0) << insider.out;
}

TEST_F(ThresholdAttackTest, InsiderToolConfirmsTheOneRealmCase) {
  StartRealms(1);
  Register(1, kPassword);
  Realm& a = realms_[0];
  a.client.reset();
  ASSERT_EQ(a.process->Stop(), 0);
  Insider insider = RunInsider(a.process->data_dir(), kPassword);
  std::cout << "insider of a 1-of-1 realm: " << insider.out;
  EXPECT_EQ(insider.tried, 23) << insider.out;
  EXPECT_EQ(insider.confirmed, 1) << insider.out;
}

// Issue 18, "Limit cannot be raised", by editing one realm's storage: a's
// G (in the clear framing and the sealed record's associated data) raised,
// or its sealed record (which holds the counter) changed. Either way the
// record no longer opens at a: a evaluates nothing, and b and c recover,
// each charged one attempt.
TEST_F(ThresholdAttackTest, EditingOneRealmsLimitOrCounterFailsClosed) {
  StartRealms(3);
  Sent sent = Register(2, kPassword);
  Realm& a = realms_[0];
  std::string original;
  for (int edit : {0, 1}) {
    SCOPED_TRACE(edit == 0 ? "G raised" : "sealed counter changed");
    a.client.reset();
    ASSERT_EQ(a.process->Stop(), 0);
    {
      rocksdb::DB* raw = nullptr;
      ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(),
                                    a.process->data_dir() + "/records", &raw)
                      .ok());
      std::unique_ptr<rocksdb::DB> db(raw);
      const std::string key =
          storage::RecordDbKey(storage::DeriveAccountKey(kAccount));
      if (original.empty()) {
        ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), key, &original).ok());
      }
      std::string v = original;  // each edit on the untouched record
      if (edit == 0) {
        v[12] = 100;  // G = 5 -> 100 (the last byte of its u32)
      } else {
        v[storage::kRealmFrameHeaderSize + 200] ^= 1;
      }
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key, v).ok());
    }
    ASSERT_TRUE(RestartRealm(0)) << a.process->log();
    auto start = a.client->opaque().GenerateThresholdKE1(
        SecretBytes::Copy(kPassword), 3);
    vault::v1::ThresholdRecoverStartResponse out;
    EXPECT_FALSE(
        Start(0, Str(sent.descriptor.Commitment()), start->ke1s[0], &out).ok());
    EXPECT_TRUE(out.ke2().empty());  // nothing evaluated
    EXPECT_NE(a.process->log().find("tampered"), std::string::npos);
    Recovered got = Recover(kPassword, {0, 1, 2});
    ExpectRecovered(got, sent);
    EXPECT_FALSE(HasEvent(got, "ke1:realm-a") && HasEvent(got, "ke3:realm-a"));
    for (int pos : {1, 2}) {
      EXPECT_EQ(got.remaining_at[realms_[pos].id], 4u);
    }
  }
}

// Issue 18, "One realm down", registration: c is SIGKILLed after a and b
// prepared a new version X and before c did. The client commits nowhere, a
// Commit without X's commit secret is refused, and once c is back every
// realm is still active on V with X at most pending: X never reaches t and
// the user recovers V.
TEST_F(ThresholdAttackTest, RegistrationCutBeforeEveryPrepareNeverReachesT) {
  StartRealms(3);
  Sent v = Register(2, "v horse battery");
  Recovered before = Recover("v horse battery", {0, 1, 2});
  ASSERT_TRUE(before.result.ok()) << before.result.status.error_message();
  Sent x = Register(2, kPassword, 10, /*commit=*/false, /*send=*/false,
                    before.proofs);
  ASSERT_TRUE(Prepare(realms_[0], x.prepares[0]).ok());
  ASSERT_TRUE(Prepare(realms_[1], x.prepares[1]).ok());
  realms_[2].process->Kill();
  set_deadline(std::chrono::milliseconds(3000));
  EXPECT_FALSE(Prepare(realms_[2], x.prepares[2]).ok());
  // Without the commit secret (revealed only after all n prepared), nobody
  // commits X: a guessed secret is refused.
  auto forged = x.commits[0];
  forged.set_commit_secret(std::string(32, '\x07'));
  EXPECT_EQ(Commit(realms_[0], forged).status.error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(RestartRealm(2)) << realms_[2].process->log();
  for (auto& r : realms_) {
    EXPECT_EQ(Status(r).commitment(), Str(v.descriptor.Commitment())) << r.id;
  }
  EXPECT_EQ(Status(realms_[0]).pending_commitment(),
            Str(x.descriptor.Commitment()));
  EXPECT_TRUE(Status(realms_[2]).pending_commitment().empty());
  ExpectRecovered(Recover("v horse battery", {0, 1, 2}), v);
}

}  // namespace
}  // namespace bkv::testing
