#include "crypto/threshold_oprf.h"

#include "absl/strings/str_cat.h"
#include "crypto/hash.h"
#include "crypto/realm_set.h"
#include "crypto/status_macros.h"

namespace bkv::threshold {

absl::StatusOr<std::vector<uint8_t>> ProofBinding(
    std::string_view realm_id, const RegistrationVersion& version) {
  if (realm_id.empty() || realm_id.size() > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("realm id must be 1 to 64 bytes, got ", realm_id.size()));
  }
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
  out.index = share.index;
  BKV_ASSIGN_OR_RETURN(out.evaluated,
                       ristretto255::ScalarMult(share.value, blinded));
  BKV_ASSIGN_OR_RETURN(
      out.proof, dleq::GenerateProof(share.value, public_share, {&blinded, 1},
                                     {&out.evaluated, 1}, binding, rng));
  return out;
}

absl::Status VerifyPartial(const Element& public_share, const Element& blinded,
                           std::span<const uint8_t> binding,
                           const PartialEvaluation& answer) {
  return dleq::VerifyProof(public_share, {&blinded, 1}, {&answer.evaluated, 1},
                           binding, answer.proof);
}

absl::StatusOr<Element> Combine(std::span<const PartialEvaluation> answers,
                                int t) {
  if (t < 1 || answers.size() != static_cast<size_t>(t)) {
    return absl::InvalidArgumentError(
        absl::StrCat("combining needs exactly t = ", t, " evaluations, got ",
                     answers.size()));
  }
  std::vector<shamir::Point> points;
  for (const PartialEvaluation& a : answers) {
    points.push_back({a.index, a.evaluated});
  }
  return shamir::CombineInExponent(points);
}

}  // namespace bkv::threshold
