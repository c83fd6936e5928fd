#ifndef BKV_TESTS_SERVER_THRESHOLD_REALMS_H_
#define BKV_TESTS_SERVER_THRESHOLD_REALMS_H_

// Threshold realms for tests (docs/threshold.md): n real `bkv-vault`
// processes started with `--realm-id`, each with its own SoftHSM token,
// RocksDB, AKE identity key and audience, and a test-side client built from
// the crypto core only. The client deals the key, seals each realm's share to
// its identity key, and at recovery runs the uncounted status round, groups
// the realms by commitment, sends KE1 only to a group of t that agrees,
// verifies every DLEQ proof, excludes (and names) a realm whose answer does
// not verify, and only then sends any KE3. Not thread-safe.

#include <grpcpp/grpcpp.h>

#include <array>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "crypto/threshold_descriptor.h"
#include "tests/server/vault_harness.h"

namespace bkv::testing {

inline std::string Str(std::span<const uint8_t> b) {
  return {b.begin(), b.end()};
}
inline std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

struct Realm {
  std::string id;
  std::unique_ptr<VaultProcess> process;
  std::unique_ptr<TestClient> client;
  std::string token;
};

// What one registration sent, so tests can replay it.
struct Sent {
  std::vector<vault::v1::ThresholdRegisterPrepareRequest> prepares;
  std::vector<vault::v1::ThresholdRegisterCommitRequest> commits;
  threshold::Descriptor descriptor;
  SecretBytes s;  // the second secret, to compare with
  std::array<uint8_t, 60> wrapped{};
  // Realms whose ThresholdRegisterStart failed: then nothing was prepared
  // or committed anywhere (registration needs all n).
  std::vector<std::string> unreachable;
};

// Changes realm `pos`'s RecoverStart answer before the client sees it: a
// malicious realm or a network attacker.
using Tamper =
    std::function<void(int pos, vault::v1::ThresholdRecoverStartResponse&)>;

struct Recovered {
  TestClient::Result result;  // the first failure, or OK
  SecretBytes s;              // combined from t released shares
  std::string wrapped;
  std::vector<uint32_t> remaining;               // per KE1 answered, in order
  std::map<std::string, uint32_t> remaining_at;  // by realm id
  std::vector<std::string> proofs;  // by realm position, "" if not asked
  std::vector<std::string> faults;  // realm ids excluded as faulty
  // What the client did, in order: "status:a", "ke1:a", "fault:a",
  // "ke3:b", "share:b".
  std::vector<std::string> events;
  threshold::Descriptor descriptor;      // of the agreeing group
  std::vector<std::string> unreachable;  // no status answer in time
};

void ExpectRecovered(const Recovered& got, const Sent& sent);

// The raw stored value of `account`'s record in a stopped vault's data
// directory (RocksDB opened read-only); "" when there is none.
std::string ReadRecordValue(const std::string& data_dir,
                            const std::string& account);

class ThresholdRealms {
 public:
  static constexpr char kAccount[] = "alice";

  // n realms "realm-a", "realm-b", ..., each with `args` besides its realm
  // id and audience. Fatal (gtest) when one does not start.
  void StartRealms(int n, std::vector<std::string> args = {});
  // Before StartRealms: realm `pos` runs `bkv-vault-testrealm --test-fault
  // mode` (tests/server/test_realm.h), a malicious realm.
  void SetFault(int pos, std::string mode) { faults_[pos] = std::move(mode); }
  // Restarts realm `pos` (same data dir, token and key; new port) after a
  // Kill or Stop, with `args` (empty: the last start's).
  bool RestartRealm(int pos, std::vector<std::string> args = {});

  template <typename Req, typename Resp, typename Rpc>
  TestClient::Result Call(Realm& r, Rpc rpc, const Req& req, Resp* resp) {
    grpc::ClientContext ctx;
    TestClient::Authorize(ctx, r.token);
    ctx.set_deadline(std::chrono::system_clock::now() + deadline_);
    grpc::Status s = (r.client->stub().*rpc)(&ctx, req, resp);
    return TestClient::ResultOf(s, ctx);
  }

  // The uncounted status round at one realm (expects it to answer).
  vault::v1::ThresholdStatusResponse Status(Realm& r);

  // The dealer's side of a t-of-n registration (every realm prepares, then
  // every realm commits). Returns what it sent.
  // `send` false: build the requests only (the Starts are sent).
  // `proofs[i]`: realm i's proof when replacing an ACTIVE version there.
  // `epoch` 0: one above the highest epoch the realms report.
  // A realm that does not answer the Start aborts the registration (a test
  // failure unless allow_unreachable(true)).
  Sent Register(int t, const std::string& password, uint32_t limit = 10,
                bool commit = true, bool send = true,
                const std::vector<std::string>& proofs = {},
                uint64_t epoch = 0);
  TestClient::Result Prepare(
      Realm& r, const vault::v1::ThresholdRegisterPrepareRequest& p);
  TestClient::Result Commit(Realm& r,
                            const vault::v1::ThresholdRegisterCommitRequest& c);

  // A guess whose KE3 is garbage (what a guesser without the password can
  // send): the realm counts it at RecoverStart and closes it at once.
  TestClient::Result GarbageGuess(Realm& r);

  // One recovery asking the realms at `use` (positions): status round,
  // grouping by commitment, KE1 to the agreeing group, every proof verified
  // (faulty ones excluded) before any KE3, KE3 to each verified realm,
  // shares checked against the descriptor, s combined from t of them.
  Recovered Recover(const std::string& password, const std::vector<int>& use,
                    const Tamper& tamper = nullptr);

  // The deadline of every call, and of the status round's (a SIGSTOPped
  // realm answers nothing; the status round asks every realm in parallel).
  void set_deadline(std::chrono::milliseconds d) { deadline_ = d; }
  void allow_unreachable(bool allow) { allow_unreachable_ = allow; }
  void set_status_deadline(std::chrono::milliseconds d) {
    status_deadline_ = d;
  }
  // Stop the status round once t realms agree (the others are cancelled
  // and left out of the group): a slow or stopped realm costs nothing.
  void set_status_early(bool early) { status_early_ = early; }

  std::vector<Realm> realms_;

 private:
  struct Dealing;
  void Describe(const Dealing& deal, int t, uint32_t limit, uint64_t epoch,
                Sent& sent) const;
  void BuildRequests(
      const Dealing& deal,
      const std::vector<vault::v1::ThresholdRegisterStartResponse>& starts,
      const std::vector<std::string>& proofs, Sent& sent) const;
  void SendAll(bool commit, Sent& sent);
  struct Round;
  bool StatusRound(const std::vector<int>& use, Round& round, Recovered& out);
  void AskStatuses(const std::vector<int>& use,
                   std::vector<vault::v1::ThresholdStatusResponse>& st,
                   std::vector<TestClient::Result>& res);
  bool StartRound(const std::string& password, Round& round,
                  const Tamper& tamper, Recovered& out);
  bool FinishRound(Round& round, Recovered& out);

  std::chrono::milliseconds deadline_{30000};
  std::chrono::milliseconds status_deadline_{30000};
  std::map<int, std::string> faults_;
  bool allow_unreachable_ = false;
  bool status_early_ = false;
};

}  // namespace bkv::testing

#endif  // BKV_TESTS_SERVER_THRESHOLD_REALMS_H_
