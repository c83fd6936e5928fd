#include "server/login_ticket.h"

#include <gtest/gtest.h>

#include "crypto/aes_gcm_sealer.h"
#include "crypto/opaque.h"

namespace bkv::server {
namespace {

class LoginTicketTest : public ::testing::Test {
 protected:
  LoginTicketTest() : sealer_(*AesGcmSealer::Create(SecretBytes::Random(32))) {}
  LoginTicket Ticket() {
    return LoginTicket{TicketPurpose::kRecover,
                       false,
                       42,
                       7,
                       10'000,
                       SecretBytes::Random(opaque::kServerLoginStateSize),
                       std::vector<uint8_t>(kTicketBindingSize, 0xb1)};
  }
  AesGcmSealer sealer_;
};

TEST_F(LoginTicketTest, RoundTrip) {
  LoginTicket t = Ticket();
  auto sealed = SealTicket(sealer_, "acct", t);
  ASSERT_TRUE(sealed.ok());
  auto opened =
      OpenTicket(sealer_, "acct", TicketPurpose::kRecover, *sealed, 9'999);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->registration_id, 42u);
  EXPECT_EQ(opened->login_seq, 7u);
  EXPECT_EQ(opened->expires_ms, 10'000);
  EXPECT_FALSE(opened->fake);
  EXPECT_TRUE(opened->server_state == t.server_state);
  EXPECT_EQ(opened->binding, t.binding);
}

// A proof is a ticket of its own purpose: no other step's state passes for
// one, and it doesn't pass for another step.
TEST_F(LoginTicketTest, ProofIsItsOwnPurpose) {
  auto proof = SealTicket(sealer_, "acct",
                          StatelessTicket(TicketPurpose::kProof, 42, 10'000));
  ASSERT_TRUE(proof.ok());
  auto opened = OpenTicket(sealer_, "acct", TicketPurpose::kProof, *proof, 0);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->registration_id, 42u);
  EXPECT_FALSE(
      OpenTicket(sealer_, "acct", TicketPurpose::kRecover, *proof, 0).ok());
  auto login = SealTicket(sealer_, "acct", Ticket());
  EXPECT_FALSE(
      OpenTicket(sealer_, "acct", TicketPurpose::kProof, *login, 0).ok());
}

TEST_F(LoginTicketTest, BoundToAccountPurposeAndTime) {
  auto sealed = SealTicket(sealer_, "acct", Ticket());
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(OpenTicket(sealer_, "other", TicketPurpose::kRecover, *sealed, 0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenTicket(sealer_, "acct", TicketPurpose::kRegister, *sealed, 0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      OpenTicket(sealer_, "acct", TicketPurpose::kRecover, *sealed, 10'000)
          .status()
          .code(),
      absl::StatusCode::kDeadlineExceeded);
  auto other_vault = *AesGcmSealer::Create(SecretBytes::Random(32));
  EXPECT_EQ(OpenTicket(other_vault, "acct", TicketPurpose::kRecover, *sealed, 0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(LoginTicketTest, GarbageIsRefused) {
  for (size_t n : {0, 1, 27, 28, 100, 185, 186, 187, 2000}) {
    std::vector<uint8_t> junk(n, 0x5a);
    EXPECT_FALSE(
        OpenTicket(sealer_, "acct", TicketPurpose::kRecover, junk, 0).ok())
        << n;
  }
  auto sealed = SealTicket(sealer_, "acct", Ticket());
  for (size_t i = 0; i < sealed->size(); ++i) {
    auto bad = *sealed;
    bad[i] ^= 0x10;
    ASSERT_FALSE(
        OpenTicket(sealer_, "acct", TicketPurpose::kRecover, bad, 0).ok())
        << i;
  }
}

}  // namespace
}  // namespace bkv::server
