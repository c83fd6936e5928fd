#include "crypto/keyring.h"

#include <gtest/gtest.h>

#include "crypto/random.h"

namespace bkv {
namespace {

SecretBytes Secret(uint8_t fill) {
  SecretBytes s(32);
  for (auto& b : s.RevealMutable()) b = fill;
  return s;
}

PasskeyParams Passkey(uint8_t cred) {
  PasskeyParams p;
  p.rp_id = "localhost";
  p.credential_id = {cred, 2, 3};
  p.salt.fill(0x5a);
  return p;
}

struct Ring {
  Keyring ring = Keyring::Create();
  SecretBytes master = SecretBytes::Random(32);
  SlotId key_slot{}, passkey_slot{};
  std::vector<uint8_t> bytes;
  Ring() {
    key_slot = *ring.Add(master, SlotType::kRecoveryKey, {}, Secret(1));
    passkey_slot = *ring.Add(master, SlotType::kPasskey,
                             EncodePasskeyParams(Passkey(7)), Secret(2));
    bytes = *ring.Encode(master);
  }
};

TEST(KeyringTest, EachSlotOpensTheSameMasterKey) {
  Ring r;
  auto k = Keyring::Decode(r.bytes);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->generation(), 1u);
  EXPECT_EQ(k->set_id(), r.ring.set_id());
  auto a = k->Open(r.key_slot, Secret(1));
  auto b = k->Open(r.passkey_slot, Secret(2));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(*a == r.master);
  EXPECT_TRUE(*b == r.master);
}

TEST(KeyringTest, WrongSecretIsWrongSecretNotTampered) {
  Ring r;
  auto k = Keyring::Decode(r.bytes);
  auto s = k->Open(r.passkey_slot, Secret(3));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(SlotErrorOf(s.status()), SlotError::kWrongSecret);
  // A slot's secret does not open another slot (each kek is bound to its
  // slot id, type and parameters).
  EXPECT_EQ(SlotErrorOf(k->Open(r.key_slot, Secret(2)).status()),
            SlotError::kWrongSecret);
}

TEST(KeyringTest, EveryFlippedBitIsRefused) {
  Ring r;
  for (size_t i = 0; i < r.bytes.size(); ++i) {
    std::vector<uint8_t> t = r.bytes;
    t[i] ^= 0x01;
    auto k = Keyring::Decode(t);
    if (!k.ok()) continue;  // structure already refused it
    auto a = k->Open(r.key_slot, Secret(1));
    auto b = k->Open(r.passkey_slot, Secret(2));
    EXPECT_FALSE(a.ok() && b.ok()) << "bit at byte " << i;
  }
}

TEST(KeyringTest, DroppedSlotIsTampered) {
  Ring r;
  Keyring copy = *Keyring::Decode(r.bytes);
  ASSERT_TRUE(copy.Remove(r.passkey_slot).ok());
  // Re-encoding without the master key is what a store can do: keep the old
  // MAC over a body with a slot fewer.
  std::vector<uint8_t> forged = *copy.Encode(Secret(9));  // not the master
  auto k = Keyring::Decode(forged);
  ASSERT_TRUE(k.ok());
  auto s = k->Open(r.key_slot, Secret(1));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SlotErrorOf(s.status()), SlotError::kTampered);
}

TEST(KeyringTest, SlotFromAnotherSetDoesNotOpen) {
  Ring a, b;
  // b's passkey slot pasted into a's keyring under the same id: its wrap is
  // bound to b's set id.
  Keyring k = *Keyring::Decode(a.bytes);
  Keyring other = *Keyring::Decode(b.bytes);
  ASSERT_TRUE(k.Remove(a.passkey_slot).ok());
  auto id = k.Add(a.master, SlotType::kPasskey, EncodePasskeyParams(Passkey(7)),
                  Secret(2));
  ASSERT_TRUE(id.ok());
  (void)other;
  // The legitimate add opens; a wrap copied from b into this slot does not.
  auto bytes = *k.Encode(a.master);
  Keyring good = *Keyring::Decode(bytes);
  ASSERT_TRUE(good.Open(*id, Secret(2)).ok());
  std::vector<uint8_t> swapped = bytes;
  const KeySlot* theirs = other.Find(b.passkey_slot);
  // The wrap is the last 60 bytes before the MAC.
  std::copy(theirs->wrap.begin(), theirs->wrap.end(),
            swapped.end() - 32 - theirs->wrap.size());
  Keyring bad = *Keyring::Decode(swapped);
  EXPECT_EQ(SlotErrorOf(bad.Open(*id, Secret(2)).status()),
            SlotError::kWrongSecret);
}

TEST(KeyringTest, LastSlotCannotBeRemoved) {
  Keyring k = Keyring::Create();
  SecretBytes master = SecretBytes::Random(32);
  SlotId id = *k.Add(master, SlotType::kRecoveryKey, {}, Secret(1));
  auto s = k.Remove(id);
  EXPECT_EQ(SlotErrorOf(s), SlotError::kLastSlot);
  EXPECT_EQ(k.slots().size(), 1u);
}

TEST(KeyringTest, RewrapMovesTheSlotToANewSaltAndSecret) {
  Ring r;
  Keyring k = *Keyring::Decode(r.bytes);
  PasskeyParams p = Passkey(7);
  p.salt.fill(0x11);
  ASSERT_TRUE(
      k.Rewrap(r.passkey_slot, r.master, EncodePasskeyParams(p), Secret(4))
          .ok());
  Keyring after = *Keyring::Decode(*k.Encode(r.master));
  EXPECT_EQ(after.generation(), 2u);
  EXPECT_TRUE(after.Open(r.passkey_slot, Secret(4)).ok());
  EXPECT_FALSE(after.Open(r.passkey_slot, Secret(2)).ok());
  EXPECT_EQ(DecodePasskeyParams(after.Find(r.passkey_slot)->params)->salt,
            p.salt);
}

// Review #12/#2: generation 0 never exists (they start at 1), and
// UINT64_MAX could never be followed (a forged one would wedge the set).
TEST(KeyringTest, GenerationZeroAndMaxAreRefused) {
  Ring r;
  ASSERT_TRUE(Keyring::Decode(r.bytes).ok());
  constexpr size_t kGenerationAt = 8 + 2 + 16;  // magic, format, set id
  for (uint8_t fill : {uint8_t{0x00}, uint8_t{0xff}}) {
    std::vector<uint8_t> bytes = r.bytes;
    std::fill_n(bytes.begin() + kGenerationAt, 8, fill);
    EXPECT_FALSE(Keyring::Decode(bytes).ok()) << int(fill);
  }
}

TEST(KeyringTest, UnwrapsTellsASlotWhoseSecretIsTheMasterKey) {
  Keyring k = Keyring::Create();
  SecretBytes master = SecretBytes::Random(32);
  SlotId legacy = *k.Add(master, SlotType::kRecoveryKey, {}, master);
  SlotId fresh = *k.Add(master, SlotType::kRecoveryKey, {}, Secret(1));
  EXPECT_TRUE(k.Unwraps(legacy, master));
  EXPECT_FALSE(k.Unwraps(fresh, master));
}

TEST(KeyringTest, GarbageInputIsRefusedWithoutCrashing) {
  Ring r;
  for (size_t n = 0; n < r.bytes.size(); ++n) {
    auto k = Keyring::Decode(std::span(r.bytes).first(n));
    EXPECT_FALSE(k.ok() && k->Open(r.key_slot, Secret(1)).ok()) << n;
  }
  std::vector<uint8_t> junk(2000);
  for (int i = 0; i < 200; ++i) {
    SystemRandom().Bytes(junk);
    std::copy_n("BKVKEYR1\x00\x01", 10, junk.begin());
    EXPECT_FALSE(Keyring::Decode(junk).ok());
  }
  std::vector<uint8_t> future = r.bytes;
  future[9] = 2;
  EXPECT_EQ(Keyring::Decode(future).status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST(KeyringTest, ParametersRoundTripAndRejectMalformed) {
  PasskeyParams p = Passkey(1);
  auto back = DecodePasskeyParams(EncodePasskeyParams(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->rp_id, p.rp_id);
  EXPECT_EQ(back->credential_id, p.credential_id);
  p.credential_id.clear();
  EXPECT_FALSE(DecodePasskeyParams(EncodePasskeyParams(p)).ok());
  VaultParams v;
  v.vault_key.fill(3);
  v.account = "alice";
  EXPECT_EQ(DecodeVaultParams(EncodeVaultParams(v))->account, "alice");
  Keyring k = Keyring::Create();
  EXPECT_FALSE(k.Add(Secret(1), SlotType::kPasskey, {1, 2}, Secret(2)).ok());
}

}  // namespace
}  // namespace bkv
