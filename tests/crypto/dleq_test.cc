// RFC 9497 §2.2 DLEQ proofs (crypto/dleq.h) against the RFC's VOPRF-mode
// vectors (Appendix A.1.2,
// tests/vectors/rfc9497-ristretto255-sha512-voprf.txt), and the ways a proof
// must fail.
#include "crypto/dleq.h"

#include <gtest/gtest.h>

#include "absl/strings/str_split.h"
#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/oprf.h"
#include "tests/crypto/test_support.h"
#include "tests/crypto/threshold_test_support.h"
#include "tests/crypto/vector_file.h"

namespace bkv::dleq {
namespace {

using ristretto255::Element;
using testing::PublicOf;
using testing::ReadVectorFile;
using testing::ScriptedRandom;
using testing::VectorSection;

constexpr char kFile[] = "rfc9497-ristretto255-sha512-voprf.txt";

// A batch value: comma-separated hex.
std::vector<std::vector<uint8_t>> Batch(const VectorSection& v,
                                        const std::string& key) {
  std::vector<std::vector<uint8_t>> out;
  for (absl::string_view part : absl::StrSplit(v.values.at(key), ',')) {
    auto bytes = HexDecode(std::string_view(part.data(), part.size()));
    EXPECT_TRUE(bytes.ok()) << key;
    out.push_back(bytes.ok() ? *bytes : std::vector<uint8_t>{});
  }
  return out;
}

Element AsElement(std::span<const uint8_t> b) {
  auto e = ristretto255::DeserializeElement(b, "vector element");
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : Element{};
}

struct VoprfVector {
  SecretBytes sk;
  Element pk;
  std::vector<Element> blinded, evaluated;
  Proof proof;
  std::vector<uint8_t> proof_random;
};

VoprfVector Load(const std::string& title) {
  auto file = ReadVectorFile(kFile);
  VoprfVector out;
  for (const VectorSection& s : file) {
    if (s.title == "VOPRF Mode key material") {
      out.sk = SecretBytes::Copy(s.Bytes("skSm"));
      out.pk = AsElement(s.Bytes("pkSm"));
    }
    if (s.title != title) continue;
    for (auto& b : Batch(s, "BlindedElement"))
      out.blinded.push_back(AsElement(b));
    for (auto& b : Batch(s, "EvaluationElement")) {
      out.evaluated.push_back(AsElement(b));
    }
    auto proof = s.Bytes("Proof");
    EXPECT_EQ(proof.size(), kProofSize);
    std::copy_n(proof.begin(), std::min(proof.size(), kProofSize),
                out.proof.begin());
    out.proof_random = s.Bytes("ProofRandomScalar");
  }
  EXPECT_FALSE(out.blinded.empty()) << "no section " << title;
  return out;
}

class DleqVectorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DleqVectorTest, BlindEvaluateProveFinalizeAsTheRfc) {
  auto file = ReadVectorFile(kFile);
  EXPECT_EQ(HexEncode(VoprfContextString()), file[0].Hex("contextString"));
  VoprfVector v = Load(GetParam());
  EXPECT_EQ(PublicOf(v.sk), v.pk);
  const VectorSection* s = nullptr;
  for (const auto& sec : file) {
    if (sec.title == GetParam()) s = &sec;
  }
  ASSERT_NE(s, nullptr);
  auto inputs = Batch(*s, "Input");
  auto blinds = Batch(*s, "Blind");
  auto outputs = Batch(*s, "Output");
  const std::string h2g_dst =
      "HashToGroup-" +
      std::string(reinterpret_cast<const char*>(VoprfContextString().data()),
                  VoprfContextString().size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    SecretBytes blind = SecretBytes::Copy(blinds[i]);
    auto p = ristretto255::HashToGroup(inputs[i], AsBytes(h2g_dst));
    ASSERT_TRUE(p.ok());
    auto blinded = ristretto255::ScalarMult(blind, *p);
    ASSERT_TRUE(blinded.ok());
    EXPECT_EQ(*blinded, v.blinded[i]);
    auto evaluated = oprf::BlindEvaluate(v.sk, *blinded);
    ASSERT_TRUE(evaluated.ok());
    EXPECT_EQ(*evaluated, v.evaluated[i]);
    auto output = oprf::Finalize(inputs[i], blind, *evaluated);
    ASSERT_TRUE(output.ok());
    EXPECT_EQ(HexEncode(output->Reveal()), HexEncode(outputs[i]));
  }
  ScriptedRandom rng({v.proof_random});
  auto proof = GenerateProof(v.sk, v.pk, v.blinded, v.evaluated, {}, rng);
  ASSERT_TRUE(proof.ok()) << proof.status();
  EXPECT_EQ(HexEncode(*proof), HexEncode(v.proof));
  EXPECT_TRUE(VerifyProof(v.pk, v.blinded, v.evaluated, {}, v.proof).ok());
}

INSTANTIATE_TEST_SUITE_P(Rfc9497, DleqVectorTest,
                         ::testing::Values("Test Vector 1, Batch Size 1",
                                           "Test Vector 2, Batch Size 1",
                                           "Test Vector 3, Batch Size 2"));

TEST(DleqTest, EveryBitOfTheProofMatters) {
  VoprfVector v = Load("Test Vector 3, Batch Size 2");
  for (size_t byte = 0; byte < kProofSize; byte += 7) {
    Proof bad = v.proof;
    bad[byte] ^= 0x01;
    EXPECT_EQ(VerifyProof(v.pk, v.blinded, v.evaluated, {}, bad).code(),
              absl::StatusCode::kInvalidArgument)
        << "byte " << byte;
  }
  Proof unreduced = v.proof;
  std::fill(unreduced.begin() + 32, unreduced.end(), 0xff);  // s >= L
  EXPECT_FALSE(VerifyProof(v.pk, v.blinded, v.evaluated, {}, unreduced).ok());
}

TEST(DleqTest, WrongKeyElementsOrBindingDoNotVerify) {
  VoprfVector v = Load("Test Vector 3, Batch Size 2");
  const Element other_pk = PublicOf(SystemRandom().Scalar());
  EXPECT_FALSE(VerifyProof(other_pk, v.blinded, v.evaluated, {}, v.proof).ok());
  std::vector<Element> swapped = {v.evaluated[1], v.evaluated[0]};
  EXPECT_FALSE(VerifyProof(v.pk, v.blinded, swapped, {}, v.proof).ok());
  EXPECT_FALSE(VerifyProof(v.pk, std::span(v.blinded).first(1),
                           std::span(v.evaluated).first(1), {}, v.proof)
                   .ok());
  const uint8_t binding[] = {'x'};
  EXPECT_FALSE(
      VerifyProof(v.pk, v.blinded, v.evaluated, binding, v.proof).ok());
  EXPECT_FALSE(VerifyProof(v.pk, v.blinded, {}, {}, v.proof).ok());
}

TEST(DleqTest, BoundProofVerifiesOnlyUnderItsBinding) {
  VoprfVector v = Load("Test Vector 1, Batch Size 1");
  const uint8_t a[] = {'a'}, b[] = {'b'};
  auto proof =
      GenerateProof(v.sk, v.pk, v.blinded, v.evaluated, a, SystemRandom());
  ASSERT_TRUE(proof.ok());
  EXPECT_TRUE(VerifyProof(v.pk, v.blinded, v.evaluated, a, *proof).ok());
  EXPECT_FALSE(VerifyProof(v.pk, v.blinded, v.evaluated, b, *proof).ok());
  EXPECT_FALSE(VerifyProof(v.pk, v.blinded, v.evaluated, {}, *proof).ok());
}

TEST(DleqTest, AProofOfAnotherKeyDoesNotVerify) {
  // An evaluation under a key the prover knows, proved honestly for that
  // key, checked against the registered public key: refused.
  VoprfVector v = Load("Test Vector 1, Batch Size 1");
  SecretBytes known = SystemRandom().Scalar();
  auto z = oprf::BlindEvaluate(known, v.blinded[0]);
  ASSERT_TRUE(z.ok());
  auto proof = GenerateProof(known, PublicOf(known), v.blinded, {&*z, 1}, {},
                             SystemRandom());
  ASSERT_TRUE(proof.ok());
  EXPECT_FALSE(VerifyProof(v.pk, v.blinded, {&*z, 1}, {}, *proof).ok());
  // And the same key's proof claimed for the registered key's evaluation.
  EXPECT_FALSE(VerifyProof(v.pk, v.blinded, v.evaluated, {}, *proof).ok());
}

}  // namespace
}  // namespace bkv::dleq
