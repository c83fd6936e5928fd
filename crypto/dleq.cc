#include "crypto/dleq.h"

#include <sodium.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/hash.h"
#include "crypto/status_macros.h"

namespace bkv::dleq {
namespace {

using ristretto255::kScalarSize;

const std::string& Context() {
  static const std::string* const kContext =
      new std::string("OPRFV1-\x01-ristretto255-SHA512", 28);
  return *kContext;
}

void AppendU16(std::vector<uint8_t>& out, size_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

// I2OSP(len(x), 2) || x
void AppendWithLength(std::vector<uint8_t>& out, std::span<const uint8_t> x) {
  AppendU16(out, x.size());
  AppendBytes(out, x);
}

absl::StatusOr<SecretBytes> HashToScalar(std::span<const uint8_t> msg) {
  static const std::string kDst = "HashToScalar-" + Context();
  return ristretto255::HashToScalar(msg, AsBytes(kDst));
}

struct Composites {
  Element m{};
  Element z{};
};

// ComputeComposites (RFC 9497 §2.2.1): M = sum d_i C_i, Z = sum d_i D_i with
// weights d_i hashed from pk, the binding-extended seed DST and each pair.
absl::StatusOr<Composites> ComputeComposites(const Element& pk,
                                             std::span<const Element> c,
                                             std::span<const Element> d,
                                             std::span<const uint8_t> binding) {
  if (c.empty() || c.size() != d.size() || c.size() > 0xffff) {
    return absl::InvalidArgumentError(
        absl::StrCat("DLEQ: need as many evaluated as blinded elements (",
                     c.size(), " vs ", d.size(), "), at least one"));
  }
  std::vector<uint8_t> seed_dst;
  for (std::string_view part :
       {std::string_view("Seed-"), std::string_view(Context())}) {
    seed_dst.insert(seed_dst.end(), part.begin(), part.end());
  }
  seed_dst.insert(seed_dst.end(), binding.begin(), binding.end());
  std::vector<uint8_t> h1;
  AppendWithLength(h1, pk);
  AppendWithLength(h1, seed_dst);
  const Sha512Digest seed = Sha512({h1});
  Composites out;  // identity elements
  for (size_t i = 0; i < c.size(); ++i) {
    std::vector<uint8_t> h2;
    AppendWithLength(h2, seed);
    AppendU16(h2, i);
    AppendWithLength(h2, c[i]);
    AppendWithLength(h2, d[i]);
    AppendBytes(h2, AsBytes("Composite"));
    BKV_ASSIGN_OR_RETURN(SecretBytes di, HashToScalar(h2));
    BKV_ASSIGN_OR_RETURN(Element mi, ristretto255::ScalarMult(di, c[i]));
    BKV_ASSIGN_OR_RETURN(Element zi, ristretto255::ScalarMult(di, d[i]));
    BKV_ASSIGN_OR_RETURN(out.m, ristretto255::ElementAdd(out.m, mi));
    BKV_ASSIGN_OR_RETURN(out.z, ristretto255::ElementAdd(out.z, zi));
  }
  return out;
}

// c = HashToScalar(pk, M, Z, t2, t3, "Challenge"), each element with its
// length (RFC 9497 §2.2.1).
absl::StatusOr<SecretBytes> Challenge(const Element& pk, const Composites& mz,
                                      const Element& t2, const Element& t3) {
  std::vector<uint8_t> transcript;
  for (const Element* e : {&pk, &mz.m, &mz.z, &t2, &t3}) {
    AppendWithLength(transcript, *e);
  }
  AppendBytes(transcript, AsBytes("Challenge"));
  return HashToScalar(transcript);
}

// a * x + b * y for public scalars; fails on the identity.
absl::StatusOr<Element> TwoTerm(const SecretBytes& a, const Element& x,
                                const SecretBytes& b, const Element& y) {
  BKV_ASSIGN_OR_RETURN(Element ax, ristretto255::ScalarMult(a, x));
  BKV_ASSIGN_OR_RETURN(Element by, ristretto255::ScalarMult(b, y));
  BKV_ASSIGN_OR_RETURN(Element sum, ristretto255::ElementAdd(ax, by));
  if (sodium_is_zero(sum.data(), sum.size())) {
    return absl::InvalidArgumentError("DLEQ: identity in the proof transcript");
  }
  return sum;
}

const Element& Generator() {
  static const Element kGenerator =
      *ristretto255::ScalarMultBase(ristretto255::SmallScalar(1));
  return kGenerator;
}

}  // namespace

std::span<const uint8_t> VoprfContextString() { return AsBytes(Context()); }

absl::StatusOr<Proof> GenerateProof(const SecretBytes& k, const Element& pk,
                                    std::span<const Element> c,
                                    std::span<const Element> d,
                                    std::span<const uint8_t> binding,
                                    const RandomSource& rng) {
  BKV_ASSIGN_OR_RETURN(Composites mz, ComputeComposites(pk, c, d, binding));
  const SecretBytes r = rng.Scalar();
  BKV_ASSIGN_OR_RETURN(Element t2, ristretto255::ScalarMultBase(r));
  BKV_ASSIGN_OR_RETURN(Element t3, ristretto255::ScalarMult(r, mz.m));
  BKV_ASSIGN_OR_RETURN(SecretBytes ch, Challenge(pk, mz, t2, t3));
  BKV_ASSIGN_OR_RETURN(SecretBytes ck, ristretto255::ScalarMul(ch, k));
  BKV_ASSIGN_OR_RETURN(SecretBytes s, ristretto255::ScalarSub(r, ck));
  Proof proof;
  std::copy(ch.Reveal().begin(), ch.Reveal().end(), proof.begin());
  std::copy(s.Reveal().begin(), s.Reveal().end(), proof.begin() + kScalarSize);
  return proof;
}

absl::Status VerifyProof(const Element& pk, std::span<const Element> c,
                         std::span<const Element> d,
                         std::span<const uint8_t> binding, const Proof& proof) {
  const std::span<const uint8_t> all(proof);
  BKV_ASSIGN_OR_RETURN(SecretBytes ch, ristretto255::DeserializeScalar(
                                           all.first(kScalarSize), "proof c"));
  BKV_ASSIGN_OR_RETURN(SecretBytes s, ristretto255::DeserializeScalar(
                                          all.last(kScalarSize), "proof s"));
  BKV_ASSIGN_OR_RETURN(Composites mz, ComputeComposites(pk, c, d, binding));
  BKV_ASSIGN_OR_RETURN(Element t2, TwoTerm(s, Generator(), ch, pk));
  BKV_ASSIGN_OR_RETURN(Element t3, TwoTerm(s, mz.m, ch, mz.z));
  BKV_ASSIGN_OR_RETURN(SecretBytes expected, Challenge(pk, mz, t2, t3));
  if (!(expected == ch)) {
    return absl::InvalidArgumentError("DLEQ proof does not verify");
  }
  return absl::OkStatus();
}

}  // namespace bkv::dleq
