// Issue 10, finding 2: libsodium 1.0.18 accepts a ristretto255 encoding with
// the top bit of its last byte set; RFC 9496 §4.3.1 rejects it. Every field
// of every OPAQUE message that carries an element is checked here, starting
// from real messages so that the top bit is the only thing wrong.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "crypto/hash.h"
#include "crypto/opaque.h"
#include "crypto/ristretto255.h"
#include "tests/crypto/test_support.h"

namespace bkv::opaque {
namespace {

std::vector<uint8_t> Id(std::string_view s) { return {s.begin(), s.end()}; }

template <typename T>
std::vector<uint8_t> Bytes(const T& message) {
  auto b = message.Serialize();
  return {b.begin(), b.end()};
}

// Sets the top bit of the element at `offset` and expects Parse to refuse it,
// naming `field`.
template <typename T>
void ExpectHighBitRefused(std::vector<uint8_t> bytes, size_t offset,
                          std::string_view field) {
  ASSERT_TRUE(T::Parse(bytes).ok()) << field << ": the unmodified message";
  bytes[offset + 31] |= 0x80;
  auto parsed = T::Parse(bytes);
  ASSERT_FALSE(parsed.ok()) << field << " accepted with the top bit set";
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(parsed.status().message());
  EXPECT_NE(message.find("not a canonical"), std::string::npos) << message;
  EXPECT_NE(message.find(field), std::string::npos) << message;
}

TEST(RistrettoRegressionTest, HighBitIsRefusedByTheDecoder) {
  ServerKeyPair keys = ServerKeyPair::Generate();
  std::vector<uint8_t> e(keys.public_key.begin(), keys.public_key.end());
  ASSERT_TRUE(ristretto255::DeserializeElement(e, "element").ok());
  e[31] |= 0x80;
  EXPECT_FALSE(ristretto255::DeserializeElement(e, "element").ok());
}

TEST(RistrettoRegressionTest, EveryElementFieldRefusesTheHighBit) {
  Config config;
  HmacSha512KeyedHash seed(SecretBytes::Random(64));
  ServerKeyPair keys = ServerKeyPair::Generate();
  OpaqueServer server(config, seed, keys);
  testing::IdentityKsf ksf;
  OpaqueClient client(config, ksf, keys.public_key);

  auto reg = client.CreateRegistrationRequest(SecretBytes::Copy("pw"));
  ASSERT_TRUE(reg.ok());
  auto response = server.CreateRegistrationResponse(reg->request, Id("a"));
  ASSERT_TRUE(response.ok());
  auto finish =
      client.FinalizeRegistrationRequest(std::move(reg->state), *response);
  ASSERT_TRUE(finish.ok());
  auto ke1 = client.GenerateKE1(SecretBytes::Copy("pw"));
  ASSERT_TRUE(ke1.ok());
  auto ke2 = server.GenerateKE2(finish->record, Id("a"), ke1->ke1);
  ASSERT_TRUE(ke2.ok());

  // Offsets from RFC 9807 §5.1 and §6.1 (Nn = 32, Npk = Noe = 32).
  ExpectHighBitRefused<RegistrationRequest>(Bytes(reg->request), 0,
                                            "blinded_message");
  ExpectHighBitRefused<RegistrationResponse>(Bytes(*response), 0,
                                             "evaluated_message");
  ExpectHighBitRefused<RegistrationResponse>(Bytes(*response), 32,
                                             "server_public_key");
  ExpectHighBitRefused<RegistrationRecord>(Bytes(finish->record), 0,
                                           "client_public_key");
  ExpectHighBitRefused<KE1>(Bytes(ke1->ke1), 0, "blinded_message");
  ExpectHighBitRefused<KE1>(Bytes(ke1->ke1), 64, "client_public_keyshare");
  ExpectHighBitRefused<KE2>(Bytes(ke2->ke2), 0, "evaluated_message");
  ExpectHighBitRefused<KE2>(Bytes(ke2->ke2), 224, "server_public_keyshare");
}

}  // namespace
}  // namespace bkv::opaque
