#include "crypto/threshold_oprf.h"

#include "absl/strings/str_cat.h"
#include "crypto/hash.h"
#include "crypto/realm_set.h"
#include "crypto/status_macros.h"
#include "crypto/threshold_descriptor.h"

namespace bkv::threshold {

absl::StatusOr<std::vector<uint8_t>> ProofBinding(
    std::string_view realm_id, const RegistrationVersion& version) {
  BKV_RETURN_IF_ERROR(CheckRealmId(realm_id));
  std::vector<uint8_t> out;
  AppendBytes(out, AsBytes("/bkv-realm-proof/v1"));
  out.push_back(static_cast<uint8_t>(realm_id.size()));
  AppendBytes(out, AsBytes(realm_id));
  AppendBytes(out, version);
  return out;
}

absl::StatusOr<PartialEvaluation> EvaluateShare(
    const shamir::Share& share, const Element& public_share,
    const Element& blinded, std::span<const uint8_t> binding,
    const RandomSource& rng) {
  PartialEvaluation out;
  BKV_ASSIGN_OR_RETURN(out.evaluated,
                       ristretto255::ScalarMult(share.value, blinded));
  BKV_ASSIGN_OR_RETURN(
      out.proof, dleq::GenerateProof(share.value, public_share, {&blinded, 1},
                                     {&out.evaluated, 1}, binding, rng));
  return out;
}

absl::StatusOr<VerifiedPartial> VerifyPartial(const Descriptor& descriptor,
                                              size_t position,
                                              const Element& blinded,
                                              const PartialEvaluation& answer) {
  if (position >= descriptor.realms.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no realm at position ", position, " of the descriptor"));
  }
  const DescriptorRealm& realm = descriptor.realms[position];
  BKV_ASSIGN_OR_RETURN(auto binding,
                       ProofBinding(realm.realm_id, descriptor.version));
  if (absl::Status s =
          dleq::VerifyProof(realm.public_share, {&blinded, 1},
                            {&answer.evaluated, 1}, binding, answer.proof);
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("realm '", realm.realm_id, "': ", s.message()));
  }
  return VerifiedPartial(
      {static_cast<uint8_t>(position + 1), answer.evaluated});
}

absl::StatusOr<Element> Combine(std::span<const VerifiedPartial> answers,
                                int t) {
  if (t < 1 || answers.size() != static_cast<size_t>(t)) {
    return absl::InvalidArgumentError(
        absl::StrCat("combining needs exactly t = ", t, " evaluations, got ",
                     answers.size()));
  }
  std::vector<shamir::Point> points;
  for (const VerifiedPartial& a : answers) {
    points.push_back({a.index(), a.evaluated()});
  }
  return shamir::CombineInExponent(points);
}

}  // namespace bkv::threshold
