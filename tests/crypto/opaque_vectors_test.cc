// RFC 9497 A.1.1 and RFC 9807 Appendix C (ristretto255) vectors, read from
// tests/vectors/, with every intermediate value checked.
#include <gtest/gtest.h>

#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/opaque.h"
#include "crypto/opaque_internal.h"
#include "crypto/oprf.h"
#include "tests/crypto/test_support.h"
#include "tests/crypto/vector_file.h"

namespace bkv {
namespace {

using testing::IdentityKsf;
using testing::ReadVectorFile;
using testing::ScriptedRandom;
using testing::ToVec;
using testing::VectorSection;

const VectorSection* Find(const std::vector<VectorSection>& all,
                          const std::string& title) {
  for (const auto& s : all) {
    if (s.title == title) return &s;
  }
  ADD_FAILURE() << "no vector section '" << title << "'";
  return nullptr;
}

// ------------------------------------------------------------------ OPRF

TEST(OprfVectorsTest, ContextAndDsts) {
  auto file = ReadVectorFile("rfc9497-ristretto255-sha512-oprf.txt");
  ASSERT_FALSE(file.empty());
  EXPECT_EQ(HexEncode(oprf::ContextString()), file[0].Hex("contextString"));
}

TEST(OprfVectorsTest, DeriveKeyPair) {
  auto file = ReadVectorFile("rfc9497-ristretto255-sha512-oprf.txt");
  const VectorSection* keys = Find(file, "OPRF Mode key material");
  ASSERT_NE(keys, nullptr);
  auto sk = oprf::DeriveKeyPair(keys->Bytes("Seed"), keys->Bytes("KeyInfo"));
  ASSERT_TRUE(sk.ok()) << sk.status();
  EXPECT_EQ(HexEncode(sk->Reveal()), keys->Hex("skSm"));
}

class OprfVectorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OprfVectorTest, BlindEvaluateFinalize) {
  auto file = ReadVectorFile("rfc9497-ristretto255-sha512-oprf.txt");
  const VectorSection* keys = Find(file, "OPRF Mode key material");
  const VectorSection* v = Find(file, GetParam());
  ASSERT_TRUE(keys && v);
  SecretBytes sk = SecretBytes::Copy(keys->Bytes("skSm"));
  SecretBytes blind = SecretBytes::Copy(v->Bytes("Blind"));
  auto input = v->Bytes("Input");

  auto blinded = oprf::Blind(input, blind);
  ASSERT_TRUE(blinded.ok()) << blinded.status();
  EXPECT_EQ(HexEncode(*blinded), v->Hex("BlindedElement"));

  auto evaluated = oprf::BlindEvaluate(sk, *blinded);
  ASSERT_TRUE(evaluated.ok()) << evaluated.status();
  EXPECT_EQ(HexEncode(*evaluated), v->Hex("EvaluationElement"));

  auto output = oprf::Finalize(input, blind, *evaluated);
  ASSERT_TRUE(output.ok()) << output.status();
  EXPECT_EQ(HexEncode(output->Reveal()), v->Hex("Output"));
}

INSTANTIATE_TEST_SUITE_P(Rfc9497, OprfVectorTest,
                         ::testing::Values("Test Vector 1, Batch Size 1",
                                           "Test Vector 2, Batch Size 1"));

// ---------------------------------------------------------------- OPAQUE

opaque::Config ConfigFor(const VectorSection& v) {
  opaque::Config c;
  auto ctx = v.Bytes("Context");
  c.context.assign(ctx.begin(), ctx.end());
  if (v.Has("client_identity")) {
    auto id = v.Bytes("client_identity");
    c.client_identity = std::string(id.begin(), id.end());
  }
  if (v.Has("server_identity")) {
    auto id = v.Bytes("server_identity");
    c.server_identity = std::string(id.begin(), id.end());
  }
  return c;
}

class OpaqueRealVectorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(OpaqueRealVectorTest, RegistrationAndLogin) {
  auto file = ReadVectorFile("rfc9807-ristretto255.txt");
  const VectorSection* vp = Find(file, GetParam());
  ASSERT_NE(vp, nullptr);
  const VectorSection& v = *vp;
  const opaque::Config config = ConfigFor(v);
  const auto id = v.Bytes("credential_identifier");
  IdentityKsf ksf;
  HmacSha512KeyedHash oprf_seed(SecretBytes::Copy(v.Bytes("oprf_seed")));
  auto server_keys =
      opaque::ServerKeyPair::FromPrivateKey(v.Bytes("server_private_key"));
  ASSERT_TRUE(server_keys.ok()) << server_keys.status();
  EXPECT_EQ(HexEncode(server_keys->public_key), v.Hex("server_public_key"));

  // Intermediate: the per-user OPRF key from the seed.
  auto oprf_key = opaque::internal::DeriveOprfKey(oprf_seed, id);
  ASSERT_TRUE(oprf_key.ok()) << oprf_key.status();
  EXPECT_EQ(HexEncode(oprf_key->Reveal()), v.Hex("oprf_key"));

  // Registration.
  ScriptedRandom client_reg_rng(
      {v.Bytes("blind_registration"), v.Bytes("envelope_nonce")});
  opaque::OpaqueClient reg_client(config, ksf, std::nullopt, client_reg_rng);
  ScriptedRandom no_rng({});
  opaque::OpaqueServer reg_server(config, oprf_seed, *server_keys, no_rng);

  auto start = reg_client.CreateRegistrationRequest(
      SecretBytes::Copy(v.Bytes("password")));
  ASSERT_TRUE(start.ok()) << start.status();
  EXPECT_EQ(HexEncode(start->request.Serialize()),
            v.Hex("registration_request"));

  auto response = reg_server.CreateRegistrationResponse(start->request, id);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(HexEncode(response->Serialize()), v.Hex("registration_response"));

  auto finish = reg_client.FinalizeRegistrationRequest(std::move(start->state),
                                                       *response);
  ASSERT_TRUE(finish.ok()) << finish.status();
  EXPECT_EQ(HexEncode(finish->record.Serialize()),
            v.Hex("registration_upload"));
  EXPECT_EQ(HexEncode(finish->record.client_public_key),
            v.Hex("client_public_key"));
  EXPECT_EQ(HexEncode(finish->record.envelope), v.Hex("envelope"));
  EXPECT_EQ(HexEncode(finish->export_key.Reveal()), v.Hex("export_key"));
  EXPECT_TRUE(client_reg_rng.exhausted());

  // Intermediates: randomized_password and auth_key.
  auto oprf_output = oprf::Finalize(
      v.Bytes("password"), SecretBytes::Copy(v.Bytes("blind_registration")),
      response->evaluated_message);
  ASSERT_TRUE(oprf_output.ok());
  auto rwd = opaque::internal::RandomizedPassword(*oprf_output, ksf);
  ASSERT_TRUE(rwd.ok());
  EXPECT_EQ(HexEncode(rwd->Reveal()), v.Hex("randomized_password"));
  auto env_keys =
      opaque::internal::DeriveEnvelopeKeys(*rwd, v.Bytes("envelope_nonce"));
  EXPECT_EQ(HexEncode(env_keys.auth_key.Reveal()), v.Hex("auth_key"));

  // Login.
  ScriptedRandom client_rng({v.Bytes("blind_login"), v.Bytes("client_nonce"),
                             v.Bytes("client_keyshare_seed")});
  ScriptedRandom server_rng({v.Bytes("masking_nonce"), v.Bytes("server_nonce"),
                             v.Bytes("server_keyshare_seed")});
  opaque::OpaqueClient client(config, ksf, server_keys->public_key, client_rng);
  opaque::OpaqueServer server(config, oprf_seed, *server_keys, server_rng);

  auto ke1 = client.GenerateKE1(SecretBytes::Copy(v.Bytes("password")));
  ASSERT_TRUE(ke1.ok()) << ke1.status();
  EXPECT_EQ(HexEncode(ke1->ke1.Serialize()), v.Hex("KE1"));

  auto ke2 = server.GenerateKE2(finish->record, id, ke1->ke1);
  ASSERT_TRUE(ke2.ok()) << ke2.status();
  auto ke2_bytes = ke2->ke2.Serialize();
  EXPECT_EQ(HexEncode(ke2_bytes), v.Hex("KE2"));

  auto ke3 = client.GenerateKE3(std::move(ke1->state), ke2_bytes);
  ASSERT_TRUE(ke3.ok()) << ke3.status();
  EXPECT_EQ(HexEncode(ke3->ke3.Serialize()), v.Hex("KE3"));
  EXPECT_EQ(HexEncode(ke3->session_key.Reveal()), v.Hex("session_key"));
  EXPECT_EQ(HexEncode(ke3->export_key.Reveal()), v.Hex("export_key"));

  auto server_session = server.ServerFinish(std::move(ke2->state), ke3->ke3);
  ASSERT_TRUE(server_session.ok()) << server_session.status();
  EXPECT_EQ(HexEncode(server_session->Reveal()), v.Hex("session_key"));
  EXPECT_TRUE(client_rng.exhausted());
  EXPECT_TRUE(server_rng.exhausted());

  // Intermediates: handshake_secret and the MAC keys, from the server's view.
  auto server_keyshare = opaque::internal::DeriveDiffieHellmanKeyPair(
      v.Bytes("server_keyshare_seed"));
  ASSERT_TRUE(server_keyshare.ok());
  using ristretto255::ScalarMult;
  auto dh1 =
      ScalarMult(server_keyshare->private_key, ke1->ke1.client_public_keyshare);
  auto dh2 =
      ScalarMult(server_keys->private_key, ke1->ke1.client_public_keyshare);
  auto dh3 = ScalarMult(server_keyshare->private_key,
                        finish->record.client_public_key);
  ASSERT_TRUE(dh1.ok() && dh2.ok() && dh3.ok());
  std::vector<uint8_t> ikm;
  for (const auto* dh : {&*dh1, &*dh2, &*dh3}) {
    ikm.insert(ikm.end(), dh->begin(), dh->end());
  }
  auto preamble = opaque::internal::Preamble(config, server_keys->public_key,
                                             finish->record.client_public_key,
                                             ke1->ke1.Serialize(), ke2_bytes);
  auto keys = opaque::internal::DeriveKeys(ikm, preamble);
  EXPECT_EQ(HexEncode(keys.handshake_secret.Reveal()),
            v.Hex("handshake_secret"));
  EXPECT_EQ(HexEncode(keys.km2.Reveal()), v.Hex("server_mac_key"));
  EXPECT_EQ(HexEncode(keys.km3.Reveal()), v.Hex("client_mac_key"));
  EXPECT_EQ(HexEncode(keys.session_key.Reveal()), v.Hex("session_key"));
}

INSTANTIATE_TEST_SUITE_P(Rfc9807, OpaqueRealVectorTest,
                         ::testing::Values("OPAQUE-3DH Real Test Vector 1",
                                           "OPAQUE-3DH Real Test Vector 2"));

TEST(OpaqueFakeVectorTest, FakeKe2MatchesRfc) {
  auto file = ReadVectorFile("rfc9807-ristretto255.txt");
  const VectorSection* vp = Find(file, "OPAQUE-3DH Fake Test Vector 1");
  ASSERT_NE(vp, nullptr);
  const VectorSection& v = *vp;
  const opaque::Config config = ConfigFor(v);
  HmacSha512KeyedHash oprf_seed(SecretBytes::Copy(v.Bytes("oprf_seed")));
  auto server_keys =
      opaque::ServerKeyPair::FromPrivateKey(v.Bytes("server_private_key"));
  ASSERT_TRUE(server_keys.ok());
  EXPECT_EQ(HexEncode(server_keys->public_key), v.Hex("server_public_key"));

  // The fake record: the vector's client key, masking key, zero envelope.
  auto client_keys =
      opaque::ServerKeyPair::FromPrivateKey(v.Bytes("client_private_key"));
  ASSERT_TRUE(client_keys.ok());
  EXPECT_EQ(HexEncode(client_keys->public_key), v.Hex("client_public_key"));
  opaque::RegistrationRecord fake;
  fake.client_public_key = client_keys->public_key;
  auto masking_key = v.Bytes("masking_key");
  ASSERT_EQ(masking_key.size(), fake.masking_key.size());
  std::copy(masking_key.begin(), masking_key.end(), fake.masking_key.begin());
  fake.envelope.fill(0);

  ScriptedRandom server_rng({v.Bytes("masking_nonce"), v.Bytes("server_nonce"),
                             v.Bytes("server_keyshare_seed")});
  opaque::OpaqueServer server(config, oprf_seed, *server_keys, server_rng);
  auto ke1 = opaque::KE1::Parse(v.Bytes("KE1"));
  ASSERT_TRUE(ke1.ok()) << ke1.status();
  auto ke2 = server.GenerateKE2(fake, v.Bytes("credential_identifier"), *ke1);
  ASSERT_TRUE(ke2.ok()) << ke2.status();
  EXPECT_EQ(HexEncode(ke2->ke2.Serialize()), v.Hex("KE2"));
  EXPECT_TRUE(server_rng.exhausted());
}

}  // namespace
}  // namespace bkv
