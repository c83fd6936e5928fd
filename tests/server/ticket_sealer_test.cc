#include "server/ticket_sealer.h"

#include <gtest/gtest.h>

#include <atomic>

#include "crypto/hash.h"

namespace bkv::server {
namespace {

// The OPRF seed in software, counting how often the "HSM" is asked.
class CountingSeed final : public KeyedHash {
 public:
  explicit CountingSeed(SecretBytes key) : inner_(std::move(key)) {}
  absl::StatusOr<SecretBytes> HmacSha512(
      std::span<const uint8_t> message) const override {
    ++calls;
    return inner_.HmacSha512(message);
  }
  mutable std::atomic<int> calls{0};

 private:
  HmacSha512KeyedHash inner_;
};

const std::vector<uint8_t> kTicket = {1, 2, 3, 4, 5};
const std::vector<uint8_t> kAd = {'a', 'c', 'c', 't'};

class TicketSealerTest : public ::testing::Test {
 protected:
  SecretBytes seed_bytes_ = SecretBytes::Random(64);
  CountingSeed seed_{seed_bytes_.Clone()};
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  std::function<absl::Time()> clock_ = [this] { return now_; };
};

TEST_F(TicketSealerTest, AnyNodeWithTheSameSeedOpensIt) {
  EpochTicketSealer a(seed_, clock_);
  CountingSeed other_node_seed(seed_bytes_.Clone());
  EpochTicketSealer b(other_node_seed, clock_);
  auto sealed = a.Seal(kTicket, kAd);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  auto opened = b.Open(*sealed, kAd);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, kTicket);
}

TEST_F(TicketSealerTest, KeyIsDerivedOncePerEpoch) {
  EpochTicketSealer sealer(seed_, clock_);
  for (int i = 0; i < 50; ++i) {
    auto sealed = sealer.Seal(kTicket, kAd);
    ASSERT_TRUE(sealed.ok());
    ASSERT_TRUE(sealer.Open(*sealed, kAd).ok());
  }
  EXPECT_EQ(seed_.calls.load(), 1);
  now_ += EpochTicketSealer::kEpoch;
  ASSERT_TRUE(sealer.Seal(kTicket, kAd).ok());
  EXPECT_EQ(seed_.calls.load(), 2);
}

TEST_F(TicketSealerTest, AlteredOrForeignTicketsDoNotVerify) {
  EpochTicketSealer sealer(seed_, clock_);
  auto sealed = sealer.Seal(kTicket, kAd);
  ASSERT_TRUE(sealed.ok());
  for (size_t i : {size_t{3}, size_t{4}, sealed->size() - 1}) {
    std::vector<uint8_t> bad = *sealed;
    bad[i] ^= 1;  // the epoch's low byte, the nonce, the tag
    EXPECT_EQ(sealer.Open(bad, kAd).status().code(),
              absl::StatusCode::kDataLoss)
        << i;
  }
  EXPECT_EQ(sealer.Open(*sealed, {}).status().code(),
            absl::StatusCode::kDataLoss);
  CountingSeed foreign(SecretBytes::Random(64));
  EpochTicketSealer other_vault(foreign, clock_);
  EXPECT_EQ(other_vault.Open(*sealed, kAd).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(sealer.Open(std::vector<uint8_t>(10), kAd).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(TicketSealerTest, NeighbouringEpochsOpenOlderOnesExpire) {
  EpochTicketSealer sealer(seed_, clock_);
  auto sealed = sealer.Seal(kTicket, kAd);
  ASSERT_TRUE(sealed.ok());
  now_ += EpochTicketSealer::kEpoch;  // the hour turned since sealing
  EXPECT_TRUE(sealer.Open(*sealed, kAd).ok());
  now_ -= 2 * EpochTicketSealer::kEpoch;  // this node's clock is behind
  EXPECT_TRUE(sealer.Open(*sealed, kAd).ok());
  now_ += 3 * EpochTicketSealer::kEpoch;
  EXPECT_EQ(sealer.Open(*sealed, kAd).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace bkv::server
