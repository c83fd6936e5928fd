// Keys, chunk ids, content-defined boundaries and sealing of repository v2.
#include "crypto/repo_crypto.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace bkv {
namespace {

std::vector<uint8_t> Random(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(gen());
  return v;
}

constexpr char kGoldenCuts[] =
    "852429,1391294,2003089,2722778,4819930,6464656,7035892,7605276,8186505,"
    "8788335,9375031,9919047,10570992,11494002,12382702,12582912,";

std::vector<size_t> Cuts(const RepoKeys& k, std::span<const uint8_t> data) {
  std::vector<size_t> cuts;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = k.FindBoundary(data.subspan(pos));
    pos += n;
    cuts.push_back(pos);
  }
  return cuts;
}

TEST(RepoCrypto, BoundariesRespectMinMaxAndAverage) {
  RepoKeys k =
      RepoKeys::Derive(BackupKey::Generate(), ChunkIdFunction::kHmacSha256);
  auto data = Random(32 << 20, 1);
  auto cuts = Cuts(k, data);
  size_t prev = 0;
  for (size_t i = 0; i < cuts.size(); ++i) {
    size_t len = cuts[i] - prev;
    if (i + 1 < cuts.size()) {
      EXPECT_GE(len, ChunkerParams::kMin);
    }
    EXPECT_LE(len, ChunkerParams::kMax);
    prev = cuts[i];
  }
  const size_t avg = data.size() / cuts.size();
  EXPECT_GT(avg, ChunkerParams::kMin);
  EXPECT_LT(avg, ChunkerParams::kMax / 2);
}

TEST(RepoCrypto, BoundariesResynchroniseAfterAnInsertion) {
  RepoKeys k =
      RepoKeys::Derive(BackupKey::Generate(), ChunkIdFunction::kHmacSha256);
  auto data = Random(16 << 20, 2);
  auto before = Cuts(k, data);
  data.insert(data.begin() + 5'000'000, 0x42);
  auto after = Cuts(k, data);
  size_t shared = 0;
  for (size_t c : before) {
    if (c > 5'000'000 &&
        std::find(after.begin(), after.end(), c + 1) != after.end()) {
      ++shared;
    }
  }
  size_t later = 0;
  for (size_t c : before) later += c > 5'000'000;
  EXPECT_GE(shared + 1, later);  // all but at most one later cut survive
}

// Boundaries are part of the format (a changed cut re-uploads every chunk
// of every file once): a fixed key and data give these cuts. Printed when
// it fails, so a deliberate change can update the list.
TEST(RepoCrypto, BoundariesOfAFixedKeyAndDataAreStable) {
  std::vector<uint8_t> raw(BackupKey::kSize);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i);
  auto key = BackupKey::FromBytes(SecretBytes::Copy(raw));
  ASSERT_TRUE(key.ok()) << key.status();
  RepoKeys k = RepoKeys::Derive(*key, ChunkIdFunction::kHmacSha256);
  // Random parts and long runs of one byte (which reach the maximum).
  auto data = Random(12 << 20, 5);
  std::fill(data.begin() + (3 << 20), data.begin() + (6 << 20), 0x5a);
  const std::vector<size_t> cuts = Cuts(k, data);
  std::string got;
  for (size_t c : cuts) got += std::to_string(c) + ",";
  EXPECT_EQ(got, kGoldenCuts);
}

TEST(RepoCrypto, BoundariesAndIdsDependOnTheKey) {
  RepoKeys a =
      RepoKeys::Derive(BackupKey::Generate(), ChunkIdFunction::kHmacSha256);
  RepoKeys b =
      RepoKeys::Derive(BackupKey::Generate(), ChunkIdFunction::kHmacSha256);
  auto data = Random(8 << 20, 3);
  EXPECT_NE(Cuts(a, data), Cuts(b, data));
  EXPECT_NE(a.IdOf(data), b.IdOf(data));
  EXPECT_EQ(a.IdOf(data), a.IdOf(data));
}

// Ids are part of the format: function 1 must stay what every repository
// of config version 2 and 3 holds, function 2 is HMAC-SHA256 under its own
// label. Expected values computed independently (Python's hmac/hashlib,
// HKDF-SHA512 as docs/backup-format.md writes it).
TEST(RepoCrypto, ChunkIdsOfAFixedKeyArePinnedPerFunction) {
  std::vector<uint8_t> raw(BackupKey::kSize);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>(i);
  auto key = BackupKey::FromBytes(SecretBytes::Copy(raw));
  ASSERT_TRUE(key.ok()) << key.status();
  const std::string_view msg = "bkv chunk id vector";
  const std::span<const uint8_t> pt(
      reinterpret_cast<const uint8_t*>(msg.data()), msg.size());
  auto hex = [](const ChunkId& id) {
    std::string out;
    for (uint8_t b : id)
      out += "0123456789abcdef"[b >> 4], out += "0123456789abcdef"[b & 15];
    return out;
  };
  RepoKeys old = RepoKeys::Derive(*key, ChunkIdFunction::kHmacSha512Trunc);
  EXPECT_EQ(hex(old.IdOf(pt)),
            "fbecda47377ef215564fb12564c1632cb19c005608379c3eee46da501f3cbcce");
  RepoKeys now = RepoKeys::Derive(*key, ChunkIdFunction::kHmacSha256);
  EXPECT_EQ(now.id_function(), ChunkIdFunction::kHmacSha256);
  EXPECT_EQ(hex(now.IdOf(pt)),
            "deb5dbc1c7fdfe8c5ca77afb5bd101be1645a0c177630b86561fbbb027f679f2");
}

// A hasher keyed once gives, message after message, what a fresh MAC gives
// (re-keyed per message; repo_crypto.ReusedHasherOnKeylessReinitNoop runs
// this under a shim whose keyless re-init is a no-op, as on OpenSSL 3.0.0-2).
TEST(RepoCrypto, ReusedHasherMatchesOneOffIds) {
  for (ChunkIdFunction f :
       {ChunkIdFunction::kHmacSha512Trunc, ChunkIdFunction::kHmacSha256}) {
    RepoKeys k = RepoKeys::Derive(BackupKey::Generate(), f);
    ChunkIdHasher hasher(k);
    const auto a = Random(300000, 6), b = Random(17, 7);
    const std::vector<uint8_t> empty;
    EXPECT_EQ(hasher.Id(a), k.IdOf(a));
    EXPECT_EQ(hasher.Id(b), k.IdOf(b));
    EXPECT_EQ(hasher.Id(empty), k.IdOf(empty));
    EXPECT_EQ(hasher.Id(a), k.IdOf(a));
    EXPECT_NE(k.IdOf(a), k.IdOf(b));
  }
}

TEST(RepoCrypto, SealedObjectOpensOnlyAsItsKindAndId) {
  RepoKeys k =
      RepoKeys::Derive(BackupKey::Generate(), ChunkIdFunction::kHmacSha256);
  auto pt = Random(1000, 4);
  ChunkId id = k.IdOf(pt);
  auto sealed = k.Seal(RepoObjectKind::kChunk, id, pt);
  ASSERT_TRUE(sealed.ok());
  auto opened = k.Open(RepoObjectKind::kChunk, id, *sealed);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(*opened, pt);
  ChunkId other = id;
  other[0] ^= 1;
  EXPECT_EQ(k.Open(RepoObjectKind::kChunk, other, *sealed).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_FALSE(k.Open(RepoObjectKind::kIndex, id, *sealed).ok());
  (*sealed)[20] ^= 1;
  EXPECT_FALSE(k.Open(RepoObjectKind::kChunk, id, *sealed).ok());
  RepoKeys wrong =
      RepoKeys::Derive(BackupKey::Generate(), ChunkIdFunction::kHmacSha256);
  (*sealed)[20] ^= 1;
  EXPECT_FALSE(wrong.Open(RepoObjectKind::kChunk, id, *sealed).ok());
}

}  // namespace
}  // namespace bkv
