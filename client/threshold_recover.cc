// Recovery through the agreeing realms (docs/threshold.md, "The client",
// steps 2-11): status round and plan, KE1 to the group, every proof verified
// before any KE3, the KSF once, KE3 to every realm that answered, each share
// checked, combined, unwrapped; then rotation.
#include <sodium.h>

#include <algorithm>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/realm_set_file.h"
#include "client/threshold_client_internal.h"
#include "crypto/key_transport.h"
#include "crypto/shamir.h"
#include "crypto/status_macros.h"
#include "crypto/threshold_oprf.h"

namespace bkv::client {
namespace {

bool WeakerThan(const Argon2idParams& p, const Argon2idParams& floor) {
  return p.iterations < floor.iterations || p.memory_kib < floor.memory_kib ||
         p.parallelism < floor.parallelism;
}

void Fault(std::vector<RealmFault>& faults, const ThresholdClient::Impl& im,
           const Leg& leg, std::string what) {
  faults.push_back({im.IdOf(leg.position), std::move(what)});
}

// KE2 parses and its proof verifies at the realm's descriptor position.
std::optional<threshold::VerifiedPartial> Verify(
    const threshold::Descriptor& d, const ristretto255::Element& blinded,
    const Leg& leg) {
  auto ke2 = opaque::KE2::Parse(AsBytes(leg.start.ke2()));
  if (!ke2.ok() || leg.start.proof().size() != dleq::kProofSize) {
    return std::nullopt;
  }
  threshold::PartialEvaluation pe{ke2->evaluated_message, {}};
  std::copy_n(leg.start.proof().begin(), pe.proof.size(), pe.proof.begin());
  auto v = threshold::VerifyPartial(d, leg.position, blinded, pe);
  if (!v.ok()) return std::nullopt;
  return *v;
}

// The realm's released s_i || wrapped: opens under its session key, s_i is
// its committed share, wrapped hashes to the descriptor's.
std::optional<shamir::Share> CheckRelease(
    const threshold::Descriptor& d, const std::string& account, const Leg& leg,
    const vault::v1::ThresholdRecoverFinishResponse& resp,
    std::string* wrapped) {
  auto opened = key_transport::Open(
      leg.finish->session_key, key_transport::Direction::kRecover, account,
      AsBytes(resp.sealed_share()), key_transport::kRealmReleaseSize);
  if (!opened.ok()) return std::nullopt;
  SecretBytes s_i = SecretBytes::Copy(std::span(*opened).first(32));
  std::array<uint8_t, 32> hash;
  crypto_hash_sha256(hash.data(), opened->data() + 32, opened->size() - 32);
  const bool good =
      threshold::CheckShare(d, leg.position, threshold::ShareKind::kSecond, s_i)
          .ok() &&
      hash == d.wrapped_hash;
  if (good) wrapped->assign(opened->begin() + 32, opened->end());
  sodium_memzero(opened->data(), opened->size());
  if (!good) return std::nullopt;
  return shamir::Share{static_cast<uint8_t>(leg.position + 1), std::move(s_i)};
}

absl::Status FaultError(const std::vector<RealmFault>& faults,
                        absl::string_view what, uint32_t remaining) {
  return ThresholdError(
      VaultErrorKind::kRealmFault,
      absl::StrCat(what, ": ", DescribeFaults(faults),
                   ". This is not a wrong password; one attempt was spent at "
                   "each realm asked. Tell the realms' operators"),
      /*spent=*/true, remaining);
}

uint32_t LowestRemaining(const std::vector<Leg>& legs, uint32_t fallback) {
  uint32_t low = fallback;
  for (const Leg& leg : legs) {
    if (leg.status.ok() && leg.start.has_attempts_remaining()) {
      low = std::min(low, leg.start.attempts_remaining());
    }
  }
  return low;
}

// A leg whose RecoverStart failed after its status said ACTIVE: unavailable
// (network, load, token, a race with a lock) or that realm's fault. Its own
// answer is never the result: INVALID_LOGIN cannot be honest there (no
// password was checked yet), and one realm must not speak for t.
void ClassifyFailedLeg(const ThresholdClient::Impl& im, const Leg& leg,
                       std::vector<RealmFault>& faults,
                       std::vector<std::string>& unavailable) {
  const VaultErrorKind kind = VaultError::From(leg.status).kind;
  const std::string text = absl::CEscape(leg.status.message());
  switch (kind) {
    case VaultErrorKind::kTransient:
    case VaultErrorKind::kRateLimited:
    case VaultErrorKind::kUnauthenticated:
    case VaultErrorKind::kLocked:
    case VaultErrorKind::kNotRegistered:
    case VaultErrorKind::kExpired:
      unavailable.push_back(
          absl::StrCat(im.IdOf(leg.position), " (", text, ")"));
      return;
    default:
      Fault(faults, im, leg,
            absl::StrCat("its RecoverStart failed after its status said "
                         "ACTIVE: ",
                         text));
  }
}

// Steps 6-7: every answer verified before anything else; t of them
// combined; the KSF once. Fewer than t verified: no KE3 at all.
absl::StatusOr<SecretBytes> VerifyAndStretch(
    const ThresholdClient::Impl& im, const threshold::Descriptor& d,
    const opaque::OpaqueClient& opaque,
    const opaque::ThresholdLoginStart& login, std::vector<Leg>& legs,
    std::vector<RealmFault>& faults, uint32_t remaining) {
  const ristretto255::Element blinded = login.ke1s[0].blinded_message;
  std::vector<threshold::VerifiedPartial> verified;
  std::vector<std::string> unavailable;
  for (Leg& leg : legs) {
    if (!leg.status.ok()) {
      ClassifyFailedLeg(im, leg, faults, unavailable);
      continue;
    }
    if (auto v = Verify(d, blinded, leg)) {
      leg.verified = true;
      verified.push_back(*v);
    } else {
      Fault(faults, im, leg, "its OPRF answer or proof does not verify");
    }
  }
  if (static_cast<int>(verified.size()) < d.t) {
    if (!faults.empty()) {
      return FaultError(faults, "too few realms answered correctly", remaining);
    }
    return ThresholdError(
        VaultErrorKind::kTransient,
        absl::StrCat("only ", verified.size(), " of the ", d.t,
                     " needed realms answered; unavailable: ",
                     absl::StrJoin(unavailable, ", "),
                     ". Not a wrong password; retry later"),
        /*spent=*/true, remaining);
  }
  BKV_ASSIGN_OR_RETURN(ristretto255::Element z,
                       threshold::Combine(std::span(verified).first(d.t), d.t));
  return opaque.ThresholdRandomizedPassword(login.state, z);
}

// One realm's KE3 with its login state (a real one, or WrongPassword's
// all-zero filler that closes the login as a wrong password).
absl::Status SendKe3(const ThresholdClient::Impl& im,
                     const std::string& account, const Leg& leg,
                     std::string ke3,
                     vault::v1::ThresholdRecoverFinishResponse* resp) {
  vault::v1::ThresholdRecoverFinishRequest req;
  req.set_account(account);
  req.set_ke3(std::move(ke3));
  req.set_login_state(leg.start.login_state());
  return im.Call(leg.position, "ThresholdRecoverFinish", VaultCall::kAfterCount,
                 &vault::v1::Vault::Stub::ThresholdRecoverFinish, req, resp);
}

// Step 8 when no envelope opened: the password is wrong. Every login is
// closed; the realms' answer with the lowest remaining count is returned.
absl::Status WrongPassword(const ThresholdClient::Impl& im,
                           const std::string& account, std::vector<Leg>& legs) {
  std::vector<absl::Status> results(legs.size());
  Parallel(legs.size(), [&](size_t j) {
    if (!legs[j].status.ok()) return;
    vault::v1::ThresholdRecoverFinishResponse resp;
    // Zeros: no secret, only a KE3 of the right size that cannot verify.
    results[j] = SendKe3(im, account, legs[j],
                         std::string(opaque::kKe3Size, '\0'), &resp);
  });
  std::optional<absl::Status> best;
  uint32_t low = UINT32_MAX;
  for (const absl::Status& r : results) {
    const VaultError e = VaultError::From(r);
    if (!r.ok() && e.kind == VaultErrorKind::kInvalidPassword &&
        e.attempts_remaining < low) {
      low = e.attempts_remaining;
      best = r;
    }
  }
  if (best) return *best;
  for (const absl::Status& r : results) {
    if (!r.ok()) return r;
  }
  return absl::PermissionDeniedError("wrong password");
}

// A wrong password found in a round where some realms also faulted: both
// are said (review finding 13), the status and its payloads kept.
absl::Status WithFaults(const absl::Status& s,
                        const std::vector<RealmFault>& faults) {
  if (faults.empty() || s.ok()) return s;
  return WithMessage(s, absl::StrCat(s.message(), "; also, realm faults: ",
                                     DescribeFaults(faults)));
}

// Steps 8-9 when envelopes opened: KE3 to those realms, a closing KE3 to
// the others (their fault), each released share checked.
void ReleaseShares(const ThresholdClient::Impl& im, const std::string& account,
                   const threshold::Descriptor& d, std::vector<Leg>& legs,
                   std::vector<RealmFault>& faults, ThresholdRecovery& out,
                   std::string* wrapped) {
  std::vector<vault::v1::ThresholdRecoverFinishResponse> resps(legs.size());
  std::vector<absl::Status> results(legs.size());
  Parallel(legs.size(), [&](size_t j) {
    const Leg& leg = legs[j];
    if (!leg.status.ok()) return;
    std::string ke3 = leg.finish ? AsString(leg.finish->ke3.Serialize())
                                 : std::string(opaque::kKe3Size, '\0');
    results[j] = SendKe3(im, account, leg, ke3, &resps[j]);
    // Repeating the same KE3 spends nothing (the attempt was counted at
    // RecoverStart); a lost answer must not leave the login open.
    if (VaultError::From(results[j]).retry_safe) {
      results[j] = SendKe3(im, account, leg, std::move(ke3), &resps[j]);
    }
  });
  out.proofs.assign(im.set.n(), "");
  for (size_t j = 0; j < legs.size(); ++j) {
    Leg& leg = legs[j];
    if (!leg.status.ok()) continue;
    if (!leg.finish) {
      if (leg.verified) {
        Fault(faults, im, leg, "its envelope does not open though others' do");
      }
      continue;
    }
    if (!results[j].ok()) continue;  // not released (e.g. down): not a fault
    out.proofs[leg.position] = resps[j].proof();
    leg.share = CheckRelease(d, account, leg, resps[j], wrapped);
    if (!leg.share) {
      Fault(faults, im, leg,
            "its released share does not match its commitment");
    }
  }
}

}  // namespace

absl::Status ThresholdClient::Impl::FinishRound(
    const std::string& account, const opaque::OpaqueClient& opaque,
    const RecoveryPlan& plan, const opaque::ThresholdLoginStart& login,
    std::vector<Leg>& legs, std::vector<RealmFault>& faults,
    ThresholdRecovery& out) const {
  const threshold::Descriptor& d = plan.descriptor;
  const uint32_t remaining = LowestRemaining(
      legs, plan.min_remaining > 0 ? plan.min_remaining - 1 : 0);
  BKV_ASSIGN_OR_RETURN(
      SecretBytes rwd,
      VerifyAndStretch(*this, d, opaque, login, legs, faults, remaining));
  int opened = 0;
  for (Leg& leg : legs) {
    if (!leg.status.ok()) continue;
    auto fin = opaque.FinishThresholdLogin(
        login.state, leg.position, rwd, set.realms()[leg.position].identity_key,
        AsBytes(leg.start.ke2()));
    if (fin.ok()) {
      leg.finish = std::move(*fin);
      ++opened;
    }
  }
  if (opened == 0)
    return WithFaults(WrongPassword(*this, account, legs), faults);
  std::string wrapped;
  ReleaseShares(*this, account, d, legs, faults, out, &wrapped);
  std::vector<shamir::Share> shares;
  const Leg* opened_leg = nullptr;
  for (Leg& leg : legs) {
    if (leg.finish) opened_leg = &leg;
    if (leg.share) shares.push_back(std::move(*leg.share));
  }
  if (static_cast<int>(shares.size()) < d.t) {
    if (faults.empty()) {
      // Only transport failures: nobody to blame (review finding 13).
      return ThresholdError(
          VaultErrorKind::kTransient,
          absl::StrCat("only ", shares.size(), " of the ", d.t,
                       " needed realms released a share (the others did not "
                       "answer); one attempt was spent at each realm asked. "
                       "Not a wrong password; retry later"),
          /*spent=*/true, remaining);
    }
    return FaultError(faults, "too few realms released a correct share",
                      remaining);
  }
  shares.resize(d.t);
  BKV_ASSIGN_OR_RETURN(SecretBytes s, shamir::Combine(shares));
  BKV_ASSIGN_OR_RETURN(
      out.backup_key, key_transport::UnwrapBackupKeyThreshold(
                          opened_leg->finish->export_key, s, d.version, account,
                          AsBytes(wrapped)));
  return absl::OkStatus();
}

// Steps 10-11 after the key is unwrapped: the memory rises, then whether a
// rotation is due (it runs after the key was returned: StartRotation).
void ThresholdClient::Impl::RememberAndPlanRotation(
    const std::string& account, ThresholdRecovery& out) const {
  // The key is the user's either way: a failed memory write is reported,
  // not a reason to discard it (review finding 13); no rotation then.
  if (absl::Status m = RememberNewest(account, out.epoch, out.commitment);
      !m.ok()) {
    out.rotation = absl::Status(
        m.code(), absl::StrCat("not rotated: the newest registration could not "
                               "be remembered: ",
                               m.message()));
    return;
  }
  out.rotation_started = options.rotate;
}

void ThresholdClient::Impl::StartRotation(const std::string& account,
                                          const SecretBytes& password,
                                          const ThresholdRecovery& recovered,
                                          std::vector<StatusAnswer> answers) {
  JoinRotation();
  // Copies: the caller's password and key may be gone before the thread
  // ends. SecretBytes erases them when the thread's lambda is destroyed.
  rotation_thread = std::thread(
      [this, account, pw = SecretBytes::Copy(password.Reveal()),
       key = SecretBytes::Copy(recovered.backup_key.Reveal()),
       proofs = recovered.proofs, from = recovered.commitment,
       epoch = recovered.epoch, answers = std::move(answers)]() mutable {
        // A silent realm would fail the registration after another full
        // timeout (review finding 16), a LOCKED or lagging one is repaired
        // first (finding 7) or named.
        rotation_result = ReadyAndRegister(account, pw, key, proofs, from,
                                           epoch, answers, "not rotated");
        for (std::string& p : proofs) sodium_memzero(p.data(), p.size());
      });
}

void ThresholdClient::Impl::JoinRotation() {
  if (rotation_thread.joinable()) rotation_thread.join();
}

absl::StatusOr<ThresholdRecovery> ThresholdClient::Impl::Recover(
    const std::string& account, const SecretBytes& password,
    std::vector<StatusAnswer>& answers) const {
  BKV_RETURN_IF_ERROR(CheckNewest(account));
  answers = StatusRound(account);
  BKV_ASSIGN_OR_RETURN(RecoveryPlan plan,
                       PlanRecovery(set, answers, RecallNewest(account)));
  const threshold::Descriptor& d = plan.descriptor;
  if (WeakerThan(options.vault.max_ksf, d.ksf)) {
    return ConfigError(
        "the registration's Argon2id parameters exceed this client's limits "
        "(max_ksf); nothing was spent");
  }
  BKV_ASSIGN_OR_RETURN(Argon2idKsf ksf, Argon2idKsf::Create(d.ksf));
  opaque::OpaqueClient opaque(Config(), ksf);
  BKV_RETURN_IF_ERROR(CheckRealms(plan.group));
  BKV_ASSIGN_OR_RETURN(auto login,
                       opaque.GenerateThresholdKE1(
                           SecretBytes::Copy(password.Reveal()), set.n()));
  std::vector<Leg> legs(plan.group.size());
  Parallel(legs.size(), [&](size_t j) {
    Leg& leg = legs[j];
    leg.position = plan.group[j];
    vault::v1::ThresholdRecoverStartRequest req;
    req.set_account(account);
    req.set_commitment(AsString(plan.commitment));
    req.set_realm_id(IdOf(leg.position));
    req.set_ke1(AsString(login.ke1s[leg.position].Serialize()));
    leg.status =
        Call(leg.position, "ThresholdRecoverStart", VaultCall::kCounted,
             &vault::v1::Vault::Stub::ThresholdRecoverStart, req, &leg.start);
  });
  ThresholdRecovery out;
  out.attempts_remaining_before = plan.min_remaining;
  out.epoch = d.epoch;
  out.commitment = plan.commitment;
  out.lagging = Lagging(answers, plan.commitment);
  std::vector<RealmFault> faults = plan.faults;
  // Before the KE3 round, where the realms mint the proofs: their 10 minutes
  // are never shorter than Repair's 9 (review of rthr2, finding 7).
  out.recovered_at = std::chrono::steady_clock::now();
  BKV_RETURN_IF_ERROR(
      FinishRound(account, opaque, plan, login, legs, faults, out));
  out.faults = std::move(faults);
  out.password_check = PasswordCheck(out.backup_key, password);
  out.realm_set = RealmSetDigest(set);
  RememberAndPlanRotation(account, out);
  return out;
}

}  // namespace bkv::client
