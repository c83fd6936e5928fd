#include "tests/server/threshold_realms.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sodium.h>

#include <algorithm>
#include <map>

#include "crypto/key_transport.h"
#include "crypto/random.h"
#include "crypto/seal_to_realm.h"
#include "crypto/shamir.h"
#include "crypto/threshold_oprf.h"
#include "storage/record_codec.h"

#ifndef BKV_TESTREALM_BIN
#error "BKV_TESTREALM_BIN must name the bkv-vault-testrealm binary"
#endif

namespace bkv::testing {
namespace {

using ristretto255::Element;

template <size_t N>
std::array<uint8_t, 32> Sha256(const std::array<uint8_t, N>& in) {
  std::array<uint8_t, 32> out;
  crypto_hash_sha256(out.data(), in.data(), in.size());
  return out;
}
Element PublicOf(const SecretBytes& scalar) {
  return *ristretto255::ScalarMultBase(scalar);
}

}  // namespace

void ExpectRecovered(const Recovered& got, const Sent& sent) {
  ASSERT_TRUE(got.result.ok()) << got.result.status.error_message();
  EXPECT_TRUE(got.s == sent.s);
  EXPECT_EQ(got.wrapped, Str(sent.wrapped));
}

std::string ReadRecordValue(const std::string& data_dir,
                            const std::string& account) {
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::OpenForReadOnly(rocksdb::Options(), data_dir + "/records",
                                    &raw)
           .ok()) {
    return "";
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string value;
  if (!db->Get(rocksdb::ReadOptions(),
               storage::RecordDbKey(storage::DeriveAccountKey(account)), &value)
           .ok()) {
    return "";
  }
  return value;
}

void ThresholdRealms::StartRealms(int n, std::vector<std::string> args) {
  for (int i = 0; i < n; ++i) {
    Realm r;
    r.id = TestRealmId(i);
    r.process = std::make_unique<VaultProcess>();
    std::vector<std::string> a = RealmArgs(r.id, args);
    if (auto f = faults_.find(i); f != faults_.end()) {
      r.process->set_binary(BKV_TESTREALM_BIN);
      a.insert(a.end(), {"--test-fault", f->second});
    }
    ASSERT_TRUE(r.process->Start(a)) << r.process->log();
    r.client = std::make_unique<TestClient>(r.process->address(),
                                            r.process->public_key());
    r.token = r.process->Token(kAccount, 600, r.id);
    realms_.push_back(std::move(r));
  }
}

bool ThresholdRealms::RestartRealm(int pos, std::vector<std::string> args) {
  Realm& r = realms_[pos];
  r.client.reset();
  if (!args.empty()) args = RealmArgs(r.id, args);
  if (!r.process->Start(args)) return false;
  r.client = std::make_unique<TestClient>(r.process->address(),
                                          r.process->public_key());
  return true;
}

vault::v1::ThresholdStatusResponse ThresholdRealms::Status(Realm& r) {
  vault::v1::ThresholdStatusResponse out;
  EXPECT_TRUE(Call(r, &vault::v1::Vault::Stub::ThresholdStatus,
                   vault::v1::ThresholdStatusRequest(), &out)
                  .ok());
  return out;
}

// The dealer's secrets for one registration (erased with it).
struct ThresholdRealms::Dealing {
  SecretBytes k;
  std::vector<shamir::Share> ks, ss;
  std::vector<Element> pks;
  std::vector<opaque::RegistrationRecord> records;
  SecretBytes commit_secret = SecretBytes::Random(32);
};

// The public descriptor of a dealing: what every realm checks its share by.
void ThresholdRealms::Describe(const Dealing& deal, int t, uint32_t limit,
                               uint64_t epoch, Sent& sent) const {
  const int n = static_cast<int>(realms_.size());
  threshold::Descriptor& d = sent.descriptor;
  randombytes_buf(d.version.data(), d.version.size());
  d.epoch = epoch;
  d.t = t;
  d.advertised_limit = limit;
  d.per_realm_limit = limit / (n - t + 1);
  d.ksf = TestKsfParams();
  d.public_key = PublicOf(deal.k);
  d.second_public_key = PublicOf(sent.s);
  for (int i = 0; i < n; ++i) {
    d.realms.push_back({realms_[i].id, deal.pks[i], PublicOf(deal.ks[i].value),
                        PublicOf(deal.ss[i].value)});
  }
  d.wrapped_hash = Sha256(sent.wrapped);
  crypto_hash_sha256(d.commit_hash.data(), deal.commit_secret.Reveal().data(),
                     32);
}

// Realm i's Prepare (its share sealed to its identity key under its nonce)
// and Commit.
void ThresholdRealms::BuildRequests(
    const Dealing& deal,
    const std::vector<vault::v1::ThresholdRegisterStartResponse>& starts,
    const std::vector<std::string>& proofs, Sent& sent) const {
  const threshold::Descriptor& d = sent.descriptor;
  const std::vector<uint8_t> descriptor = d.Serialize();
  for (size_t i = 0; i < realms_.size(); ++i) {
    auto record = deal.records[i].Serialize();
    threshold::RealmNonce nonce;
    std::copy_n(starts[i].realm_nonce().begin(), 32, nonce.begin());
    std::string payload = Str(deal.ks[i].value.Reveal()) +
                          Str(deal.ss[i].value.Reveal()) + Str(sent.wrapped);
    auto sealed = threshold::SealToRealm(
        deal.pks[i], threshold::PrepareContext(kAccount, d, nonce, record),
        SecretBytes::Copy(payload));
    sodium_memzero(payload.data(), payload.size());
    EXPECT_TRUE(sealed.ok());
    vault::v1::ThresholdRegisterPrepareRequest p;
    p.set_ticket(starts[i].ticket());
    p.set_registration_descriptor(Str(descriptor));
    p.set_record(Str(record));
    p.set_payload(Str(*sealed));
    if (i < proofs.size()) p.set_proof(proofs[i]);
    sent.prepares.push_back(p);
    vault::v1::ThresholdRegisterCommitRequest c;
    c.set_version(Str(d.version));
    c.set_commit_secret(Str(deal.commit_secret.Reveal()));
    sent.commits.push_back(c);
  }
}

Sent ThresholdRealms::Register(int t, const std::string& password,
                               uint32_t limit, bool commit, bool send,
                               const std::vector<std::string>& proofs,
                               uint64_t epoch) {
  const int n = static_cast<int>(realms_.size());
  Sent sent;
  Dealing deal;
  deal.k = SystemRandom().Scalar();
  sent.s = SystemRandom().Scalar();
  deal.ks = *shamir::Split(deal.k, t, n, SystemRandom());
  deal.ss = *shamir::Split(sent.s, t, n, SystemRandom());
  for (auto& r : realms_) deal.pks.push_back(r.process->public_key());
  auto reg = realms_[0].client->opaque().RegisterWithKey(
      SecretBytes::Copy(password), deal.k, deal.pks);
  EXPECT_TRUE(reg.ok()) << reg.status();
  deal.records = std::move(reg->records);
  // Start everywhere first: the epoch must be above every realm's.
  std::vector<vault::v1::ThresholdRegisterStartResponse> starts(n);
  uint64_t highest = 0;
  for (int i = 0; i < n; ++i) {
    if (!Call(realms_[i], &vault::v1::Vault::Stub::ThresholdRegisterStart,
              vault::v1::ThresholdRegisterStartRequest(), &starts[i])
             .ok()) {
      sent.unreachable.push_back(realms_[i].id);
    }
    highest = std::max<uint64_t>(highest, starts[i].epoch());
  }
  if (!sent.unreachable.empty()) {
    EXPECT_TRUE(allow_unreachable_) << sent.unreachable[0] << " unreachable";
    return sent;
  }
  randombytes_buf(sent.wrapped.data(), sent.wrapped.size());
  Describe(deal, t, limit, epoch != 0 ? epoch : highest + 1, sent);
  BuildRequests(deal, starts, proofs, sent);
  if (send) SendAll(commit, sent);
  return sent;
}

// Every realm prepares; only then does any commit (a version is never
// committed anywhere unless all n hold a verified share of it).
void ThresholdRealms::SendAll(bool commit, Sent& sent) {
  bool prepared = true;
  for (size_t i = 0; i < realms_.size(); ++i) {
    auto res = Prepare(realms_[i], sent.prepares[i]);
    EXPECT_TRUE(res.ok()) << realms_[i].id << ": "
                          << res.status.error_message();
    prepared = prepared && res.ok();
  }
  for (size_t i = 0; prepared && commit && i < realms_.size(); ++i) {
    auto res = Commit(realms_[i], sent.commits[i]);
    EXPECT_TRUE(res.ok()) << realms_[i].id << ": "
                          << res.status.error_message();
  }
}

TestClient::Result ThresholdRealms::Prepare(
    Realm& r, const vault::v1::ThresholdRegisterPrepareRequest& p) {
  vault::v1::ThresholdRegisterPrepareResponse out;
  return Call(r, &vault::v1::Vault::Stub::ThresholdRegisterPrepare, p, &out);
}

TestClient::Result ThresholdRealms::Commit(
    Realm& r, const vault::v1::ThresholdRegisterCommitRequest& c) {
  vault::v1::ThresholdRegisterCommitResponse out;
  return Call(r, &vault::v1::Vault::Stub::ThresholdRegisterCommit, c, &out);
}

TestClient::Result ThresholdRealms::GarbageGuess(Realm& r) {
  auto start = r.client->opaque().GenerateThresholdKE1(
      SecretBytes::Copy("not the password"), 1);
  vault::v1::ThresholdRecoverStartRequest req;
  req.set_commitment(Status(r).commitment());
  req.set_realm_id(r.id);
  req.set_ke1(Str(start->ke1s[0].Serialize()));
  vault::v1::ThresholdRecoverStartResponse answer;
  auto started =
      Call(r, &vault::v1::Vault::Stub::ThresholdRecoverStart, req, &answer);
  if (!started.ok()) return started;
  vault::v1::ThresholdRecoverFinishRequest fin;
  fin.set_ke3(std::string(64, '\0'));
  fin.set_login_state(answer.login_state());
  vault::v1::ThresholdRecoverFinishResponse out;
  return Call(r, &vault::v1::Vault::Stub::ThresholdRecoverFinish, fin, &out);
}

// One recovery's state between its rounds.
struct ThresholdRealms::Round {
  std::vector<int> group;  // positions that agree on one commitment
  std::string commitment;
  threshold::Descriptor descriptor;
  std::optional<opaque::ThresholdLoginStart> start;
  std::vector<vault::v1::ThresholdRecoverStartResponse> answers;
  std::vector<int> verified;  // indexes into group/answers
  std::vector<threshold::VerifiedPartial> partials;
};

namespace {

// Whether t of the answers so far agree on one parseable registration.
bool TAgree(const std::vector<vault::v1::ThresholdStatusResponse>& st,
            const std::vector<bool>& answered) {
  std::map<std::string, int> count;
  for (size_t j = 0; j < st.size(); ++j) {
    if (!answered[j] || st[j].commitment().empty()) continue;
    const int c = ++count[st[j].commitment()];
    auto d =
        threshold::Descriptor::Parse(Bytes(st[j].registration_descriptor()));
    if (d.ok() && c >= d->t) return true;
  }
  return false;
}

}  // namespace

// Every realm of `use` at once (asynchronous calls, one deadline). With
// status_early_, once t answers agree the others are cancelled: a realm
// that is SIGSTOPped then costs nothing but its absence.
void ThresholdRealms::AskStatuses(
    const std::vector<int>& use,
    std::vector<vault::v1::ThresholdStatusResponse>& st,
    std::vector<TestClient::Result>& res) {
  struct Ask {
    grpc::ClientContext ctx;
    grpc::Status status;
    std::unique_ptr<
        grpc::ClientAsyncResponseReader<vault::v1::ThresholdStatusResponse>>
        rpc;
  };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Ask>> asks;
  for (size_t j = 0; j < use.size(); ++j) {
    auto ask = std::make_unique<Ask>();
    TestClient::Authorize(ask->ctx, realms_[use[j]].token);
    ask->ctx.set_deadline(std::chrono::system_clock::now() + status_deadline_);
    ask->rpc = realms_[use[j]].client->stub().AsyncThresholdStatus(
        &ask->ctx, vault::v1::ThresholdStatusRequest(), &cq);
    ask->rpc->Finish(&st[j], &ask->status, reinterpret_cast<void*>(j));
    asks.push_back(std::move(ask));
  }
  std::vector<bool> answered(use.size(), false);
  bool cancelled = false;
  for (size_t left = use.size(); left > 0; --left) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) break;
    const size_t j = reinterpret_cast<size_t>(tag);
    answered[j] = asks[j]->status.ok();
    res[j] = TestClient::ResultOf(asks[j]->status, asks[j]->ctx);
    if (status_early_ && !cancelled && TAgree(st, answered)) {
      cancelled = true;
      for (size_t k = 0; k < use.size(); ++k) {
        if (!answered[k]) asks[k]->ctx.TryCancel();
      }
    }
  }
  cq.Shutdown();
}

// The uncounted status round: group the answering realms by commitment and
// keep a group of t (n = 2t - 1: there is at most one).
bool ThresholdRealms::StatusRound(const std::vector<int>& use, Round& round,
                                  Recovered& out) {
  std::vector<vault::v1::ThresholdStatusResponse> st(use.size());
  std::vector<TestClient::Result> res(use.size());
  AskStatuses(use, st, res);
  std::map<std::string, std::vector<int>> groups;
  std::map<std::string, std::string> descriptors;
  for (size_t j = 0; j < use.size(); ++j) {
    const std::string& id = realms_[use[j]].id;
    if (!res[j].ok()) {
      out.unreachable.push_back(id);
      continue;
    }
    out.events.push_back("status:" + id);
    if (st[j].commitment().empty()) continue;
    groups[st[j].commitment()].push_back(use[j]);
    descriptors[st[j].commitment()] = st[j].registration_descriptor();
  }
  for (auto& [commitment, group] : groups) {
    auto d = threshold::Descriptor::Parse(Bytes(descriptors[commitment]));
    if (!d.ok() || Str(d->Commitment()) != commitment) continue;
    if (static_cast<int>(group.size()) < d->t) continue;
    round.group = group;
    round.commitment = commitment;
    round.descriptor = *d;
    out.descriptor = *d;
    return true;
  }
  out.result.status = grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   "no t realms agree on a registration");
  return false;
}

// KE1 to the group, then every answer verified at its descriptor position;
// a realm whose proof fails is a fault, never a wrong password.
bool ThresholdRealms::StartRound(const std::string& password, Round& round,
                                 const Tamper& tamper, Recovered& out) {
  const auto& opaque = realms_[0].client->opaque();
  auto start =
      opaque.GenerateThresholdKE1(SecretBytes::Copy(password), realms_.size());
  EXPECT_TRUE(start.ok());
  round.start.emplace(std::move(*start));
  const Element blinded = round.start->ke1s[0].blinded_message;
  round.answers.resize(round.group.size());
  for (size_t j = 0; j < round.group.size(); ++j) {
    const int pos = round.group[j];
    Realm& r = realms_[pos];
    vault::v1::ThresholdRecoverStartRequest req;
    req.set_commitment(round.commitment);
    req.set_realm_id(r.id);
    req.set_ke1(Str(round.start->ke1s[pos].Serialize()));
    out.events.push_back("ke1:" + r.id);
    auto res = Call(r, &vault::v1::Vault::Stub::ThresholdRecoverStart, req,
                    &round.answers[j]);
    if (!res.ok()) {
      out.result = res;
      continue;
    }
    out.remaining.push_back(round.answers[j].attempts_remaining());
    out.remaining_at[r.id] = round.answers[j].attempts_remaining();
    if (tamper) tamper(pos, round.answers[j]);
    auto ke2 = opaque::KE2::Parse(Bytes(round.answers[j].ke2()));
    threshold::PartialEvaluation pe{};
    bool ok = ke2.ok() && round.answers[j].proof().size() == pe.proof.size();
    if (ok) {
      pe.evaluated = ke2->evaluated_message;
      std::copy_n(round.answers[j].proof().begin(), 64, pe.proof.begin());
      auto v = threshold::VerifyPartial(round.descriptor, pos, blinded, pe);
      ok = v.ok();
      if (ok) round.partials.push_back(*v);
    }
    if (!ok) {
      out.faults.push_back(r.id);
      out.events.push_back("fault:" + r.id);
      continue;
    }
    round.verified.push_back(static_cast<int>(j));
  }
  if (static_cast<int>(round.verified.size()) >= round.descriptor.t) {
    return true;
  }
  if (out.result.ok()) {
    out.result.status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     "fewer than t realms answered validly");
  }
  return false;
}

// KSF once on t combined partials, then KE3 to every verified realm; each
// released share is checked against the descriptor before it is combined.
bool ThresholdRealms::FinishRound(Round& round, Recovered& out) {
  const auto& opaque = realms_[0].client->opaque();
  const int t = round.descriptor.t;
  auto z = threshold::Combine(std::span(round.partials).first(t), t);
  EXPECT_TRUE(z.ok()) << z.status();
  auto rwd = opaque.ThresholdRandomizedPassword(round.start->state, *z);
  EXPECT_TRUE(rwd.ok());
  std::vector<shamir::Share> s_shares;
  out.proofs.resize(realms_.size());
  out.result = {};
  for (int j : round.verified) {
    const int pos = round.group[j];
    Realm& r = realms_[pos];
    auto fin = opaque.FinishThresholdLogin(round.start->state, pos, *rwd,
                                           r.process->public_key(),
                                           Bytes(round.answers[j].ke2()));
    if (!fin.ok()) {
      out.result.status =
          grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "envelope");
      return false;  // a wrong password: no KE3 is sent
    }
    vault::v1::ThresholdRecoverFinishRequest req;
    req.set_ke3(Str(fin->ke3.Serialize()));
    req.set_login_state(round.answers[j].login_state());
    vault::v1::ThresholdRecoverFinishResponse resp;
    out.events.push_back("ke3:" + r.id);
    out.result =
        Call(r, &vault::v1::Vault::Stub::ThresholdRecoverFinish, req, &resp);
    if (!out.result.ok()) return false;
    out.proofs[pos] = resp.proof();
    auto opened = key_transport::Open(
        fin->session_key, key_transport::Direction::kRecover, kAccount,
        Bytes(resp.sealed_share()), key_transport::kRealmReleaseSize);
    EXPECT_TRUE(opened.ok() && opened->size() == 92);
    SecretBytes s_i = SecretBytes::Copy(std::span(*opened).first(32));
    if (!threshold::CheckShare(round.descriptor, pos,
                               threshold::ShareKind::kSecond, s_i)
             .ok()) {
      out.faults.push_back(r.id);
      continue;
    }
    out.events.push_back("share:" + r.id);
    out.wrapped = Str(std::span(*opened).subspan(32));
    s_shares.push_back({static_cast<uint8_t>(pos + 1), std::move(s_i)});
  }
  if (static_cast<int>(s_shares.size()) < t) {
    out.result.status = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     "fewer than t valid shares");
    return false;
  }
  s_shares.resize(t);
  auto s = shamir::Combine(s_shares);
  EXPECT_TRUE(s.ok());
  out.s = std::move(*s);
  return true;
}

Recovered ThresholdRealms::Recover(const std::string& password,
                                   const std::vector<int>& use,
                                   const Tamper& tamper) {
  Recovered out;
  Round round;
  if (StatusRound(use, round, out) &&
      StartRound(password, round, tamper, out)) {
    FinishRound(round, out);
  }
  return out;
}

}  // namespace bkv::testing
