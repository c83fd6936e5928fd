// Registration at all n realms (docs/threshold.md, "The client",
// "Registration"): Start everywhere, deal, Prepare everywhere, remember the
// commit, Commit everywhere.
#include <sodium.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/threshold_client_internal.h"
#include "crypto/key_transport.h"
#include "crypto/random.h"
#include "crypto/seal_to_realm.h"
#include "crypto/shamir.h"
#include "crypto/status_macros.h"

namespace bkv::client {
namespace {

using StartAnswers = std::vector<vault::v1::ThresholdRegisterStartResponse>;

// One above every realm's epoch and the remembered one. A reported epoch
// outside the window a realm would accept next is that realm's fault: it
// must not push the client's epoch out of the honest realms' window.
absl::StatusOr<uint64_t> NextEpoch(const ThresholdClient::Impl& im,
                                   const StartAnswers& starts,
                                   uint64_t remembered) {
  std::vector<uint64_t> epochs;
  for (const auto& s : starts) epochs.push_back(s.epoch());
  std::vector<uint64_t> sorted = epochs;
  std::sort(sorted.begin(), sorted.end());
  const uint64_t base =
      remembered != 0 ? remembered : sorted[sorted.size() / 2];
  uint64_t top = remembered;
  std::vector<RealmFault> faults;
  for (size_t i = 0; i < epochs.size(); ++i) {
    // The realms refuse a jump above 2^32, and top + 1 must stay within it
    // (saturating: `base` may come from the state file).
    const uint64_t limit = base >= kMaxEpoch ? 0 : base + kMaxEpochJump;
    if (epochs[i] >= kMaxEpoch - 1 || epochs[i] >= limit) {
      faults.push_back(
          {im.IdOf(i), absl::StrCat("reports the epoch ", epochs[i])});
    }
    top = std::max(top, epochs[i]);
  }
  if (!faults.empty()) {
    return ThresholdError(
        VaultErrorKind::kRealmFault,
        absl::StrCat("registration needs every realm; ", DescribeFaults(faults),
                     " out of range: nothing was registered"));
  }
  return top + 1;
}

// The secrets of one dealing, erased when it goes out of scope.
struct Dealing {
  std::vector<shamir::Share> k_shares, s_shares;
  SecretBytes commit_secret = SecretBytes::Random(32);
  std::vector<uint8_t> wrapped;
  std::vector<std::vector<uint8_t>> records;
  threshold::Descriptor d;
};

absl::StatusOr<Dealing> Deal(const ThresholdClient::Impl& im,
                             const std::string& account,
                             const SecretBytes& password,
                             const SecretBytes& backup_key, uint64_t epoch,
                             const Commitment& previous) {
  const auto& set = im.set;
  Dealing out;
  const RandomSource& rng = SystemRandom();
  SecretBytes k = rng.Scalar(), s = rng.Scalar();
  BKV_ASSIGN_OR_RETURN(out.k_shares, shamir::Split(k, set.t(), set.n(), rng));
  BKV_ASSIGN_OR_RETURN(out.s_shares, shamir::Split(s, set.t(), set.n(), rng));
  std::vector<ristretto255::Element> keys;
  for (const auto& r : set.realms()) keys.push_back(r.identity_key);
  opaque::OpaqueClient opaque(im.Config(), im.registration_ksf);
  BKV_ASSIGN_OR_RETURN(
      auto reg,
      opaque.RegisterWithKey(SecretBytes::Copy(password.Reveal()), k, keys));
  threshold::Descriptor& d = out.d;
  randombytes_buf(d.version.data(), d.version.size());
  BKV_ASSIGN_OR_RETURN(out.wrapped,
                       key_transport::WrapBackupKeyThreshold(
                           reg.export_key, s, d.version, account, backup_key));
  d.epoch = epoch;
  d.previous_commitment = previous;
  d.t = set.t();
  d.advertised_limit = set.limits().advertised;
  d.per_realm_limit = set.limits().per_realm;
  d.ksf = im.options.vault.ksf;
  BKV_ASSIGN_OR_RETURN(d.public_key, ristretto255::ScalarMultBase(k));
  BKV_ASSIGN_OR_RETURN(d.second_public_key, ristretto255::ScalarMultBase(s));
  for (int i = 0; i < set.n(); ++i) {
    BKV_ASSIGN_OR_RETURN(auto ki,
                         ristretto255::ScalarMultBase(out.k_shares[i].value));
    BKV_ASSIGN_OR_RETURN(auto si,
                         ristretto255::ScalarMultBase(out.s_shares[i].value));
    d.realms.push_back({set.realms()[i].id, keys[i], ki, si});
    const auto record = reg.records[i].Serialize();
    out.records.emplace_back(record.begin(), record.end());
  }
  crypto_hash_sha256(d.wrapped_hash.data(), out.wrapped.data(),
                     out.wrapped.size());
  crypto_hash_sha256(d.commit_hash.data(), out.commit_secret.Reveal().data(),
                     out.commit_secret.size());
  return out;
}

absl::StatusOr<vault::v1::ThresholdRegisterPrepareRequest> PrepareFor(
    const ThresholdClient::Impl& im, const std::string& account,
    const Dealing& dealing, const std::vector<uint8_t>& descriptor, size_t i,
    const vault::v1::ThresholdRegisterStartResponse& start,
    const std::vector<std::string>& proofs) {
  if (start.realm_nonce().size() != threshold::kRealmNonceSize) {
    return ThresholdError(VaultErrorKind::kRealmFault,
                          absl::StrCat(im.IdOf(i),
                                       " sent a malformed "
                                       "registration nonce"));
  }
  threshold::RealmNonce nonce;
  std::copy_n(start.realm_nonce().begin(), nonce.size(), nonce.begin());
  SecretBytes payload(32 + 32 + dealing.wrapped.size());
  auto p = payload.RevealMutable();
  std::copy_n(dealing.k_shares[i].value.Reveal().begin(), 32, p.begin());
  std::copy_n(dealing.s_shares[i].value.Reveal().begin(), 32, p.begin() + 32);
  std::copy(dealing.wrapped.begin(), dealing.wrapped.end(), p.begin() + 64);
  BKV_ASSIGN_OR_RETURN(
      auto sealed,
      threshold::SealToRealm(im.set.realms()[i].identity_key,
                             threshold::PrepareContext(
                                 account, dealing.d, nonce, dealing.records[i]),
                             payload));
  vault::v1::ThresholdRegisterPrepareRequest req;
  req.set_account(account);
  req.set_ticket(start.ticket());
  req.set_registration_descriptor(AsString(descriptor));
  req.set_record(AsString(dealing.records[i]));
  req.set_payload(AsString(sealed));
  if (i < proofs.size()) req.set_proof(proofs[i]);
  return req;
}

// The first failure among the realms' answers (its payloads, so its kind
// and attempt figures stay), naming every realm that failed; OK if none.
absl::Status FirstFailure(const ThresholdClient::Impl& im,
                          const std::vector<absl::Status>& results,
                          absl::string_view step) {
  std::vector<std::string> failed;
  const absl::Status* first = nullptr;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok()) continue;
    if (first == nullptr) first = &results[i];
    // A realm's own text, escaped: it must not write to the terminal.
    failed.push_back(
        absl::StrCat(im.IdOf(i), ": ", absl::CEscape(results[i].message())));
  }
  if (first == nullptr) return absl::OkStatus();
  return WithMessage(
      *first,
      absl::StrCat(step, " needs every realm and failed at ",
                   absl::StrJoin(failed, "; "), "; nothing was committed"));
}

// Every realm prepared in this call, t or more committed, the others said
// STATE_EXPIRED: a pending version is replaced only after pending_ttl, so
// they accepted a Prepare they did not keep (docs/threshold.md, "A realm
// that lies in its status or at Prepare"). The new version is in force.
absl::Status ExpiredRightAfterPrepare(
    const ThresholdClient::Impl& im,
    const ThresholdClient::Impl::CommitTally& tally) {
  std::vector<std::string> ids;
  for (size_t i : tally.expired) ids.push_back(im.IdOf(i));
  return ThresholdError(
      VaultErrorKind::kRealmDegraded,
      absl::StrCat("registered: the new version is committed at ",
                   tally.committed, " of ", im.set.n(),
                   " realms and is in force (use the new password); ",
                   absl::StrJoin(ids, ", "),
                   " accepted its Prepare in this call and then refused the "
                   "Commit as expired: a realm fault, tell its operator. It "
                   "lags until a recovery repairs it"));
}

// Zeroes the proofs copied into the Prepare requests however Register ends:
// they authorize replacing the registration (rthr finding 3).
struct ProofEraser {
  std::vector<vault::v1::ThresholdRegisterPrepareRequest>& prepares;
  ~ProofEraser() {
    for (auto& p : prepares) {
      sodium_memzero(p.mutable_proof()->data(), p.proof().size());
    }
  }
};

// Where the Commit round left the version (rthr finding 2: a password
// change must say which password works).
ThresholdClient::Impl::Reached ReachedBy(
    const ThresholdClient::Impl& im, const threshold::Descriptor& d,
    const ThresholdClient::Impl::CommitTally& tally) {
  ThresholdClient::Impl::Reached out;
  out.registration = {d.epoch, d.Commitment(), d.per_realm_limit, {}};
  out.in_force = tally.committed >= im.set.t();
  out.unknown = !out.in_force && !tally.unheard.empty();
  for (size_t i : tally.expired) {
    out.registration.lagging.push_back(
        {im.IdOf(i),
         "refused the Commit as expired right after accepting its Prepare (a "
         "realm fault: tell its operator)"});
  }
  for (size_t i : tally.unheard) {
    out.registration.lagging.push_back(
        {im.IdOf(i),
         "did not answer its Commit (re-sent by this device's next call)"});
  }
  return out;
}

}  // namespace

absl::StatusOr<ThresholdRegistration> ThresholdClient::Impl::Register(
    const std::string& account, const SecretBytes& password,
    const SecretBytes& backup_key, const std::vector<std::string>& proofs,
    const Commitment& previous, const CommitFirst& first,
    const std::function<absl::Status(const Commitment&)>& dealt,
    Reached* reached, const BeforeCommit& before_commit) const {
  BKV_RETURN_IF_ERROR(CheckNewest(account));
  BKV_RETURN_IF_ERROR(CheckRealms(AllPositions()));
  StartAnswers starts(set.n());
  std::vector<absl::Status> results(set.n());
  vault::v1::ThresholdRegisterStartRequest start;
  start.set_account(account);
  Parallel(set.n(), [&](size_t i) {
    results[i] = Call(i, "ThresholdRegisterStart", VaultCall::kFree,
                      &vault::v1::Vault::Stub::ThresholdRegisterStart, start,
                      &starts[i]);
  });
  BKV_RETURN_IF_ERROR(FirstFailure(*this, results, "registration"));
  BKV_ASSIGN_OR_RETURN(uint64_t epoch,
                       NextEpoch(*this, starts, RecallNewest(account).epoch));
  BKV_ASSIGN_OR_RETURN(Dealing dealing, Deal(*this, account, password,
                                             backup_key, epoch, previous));
  if (dealt) BKV_RETURN_IF_ERROR(dealt(dealing.d.Commitment()));
  const std::vector<uint8_t> descriptor = dealing.d.Serialize();
  std::vector<vault::v1::ThresholdRegisterPrepareRequest> prepares;
  const ProofEraser erase{prepares};
  for (int i = 0; i < set.n(); ++i) {
    BKV_ASSIGN_OR_RETURN(
        auto req,
        PrepareFor(*this, account, dealing, descriptor, i, starts[i], proofs));
    prepares.push_back(std::move(req));
  }
  // Two steps when `first` is given: those realms, then the rest.
  std::vector<bool> early(set.n(), false);
  for (size_t i : first) early[i] = true;
  for (bool step : {true, false}) {
    if (step && first.empty()) continue;
    Parallel(set.n(), [&](size_t i) {
      if (early[i] != step && !first.empty()) return;
      vault::v1::ThresholdRegisterPrepareResponse resp;
      results[i] = Call(i, "ThresholdRegisterPrepare", VaultCall::kFree,
                        &vault::v1::Vault::Stub::ThresholdRegisterPrepare,
                        prepares[i], &resp);
    });
    BKV_RETURN_IF_ERROR(FirstFailure(*this, results, "registration"));
  }
  if (before_commit) BKV_RETURN_IF_ERROR(before_commit());
  BKV_RETURN_IF_ERROR(
      SavePendingCommit(account, descriptor, dealing.commit_secret, first));
  CommitTally tally;
  absl::Status s = CommitEverywhere(account, dealing.d, dealing.commit_secret,
                                    &tally, first);
  if (reached != nullptr) *reached = ReachedBy(*this, dealing.d, tally);
  if (!s.ok() && tally.unheard.empty() && tally.committed >= set.t()) {
    return ExpiredRightAfterPrepare(*this, tally);
  }
  BKV_RETURN_IF_ERROR(s);
  return ReachedBy(*this, dealing.d, tally).registration;
}

}  // namespace bkv::client
