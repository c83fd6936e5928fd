#include "crypto/backup_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "crypto/hash.h"

namespace bkv {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kChunk = 256;
constexpr size_t kSealed = kChunk + 16;
constexpr size_t kHdr = BackupHeader::kSize;

std::vector<uint8_t> Data(size_t n, uint8_t seed = 1) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed);
  return v;
}

class BackupFormatTest : public ::testing::Test {
 protected:
  std::vector<uint8_t> Encrypt(std::span<const uint8_t> pt,
                               const BackupKey* key = nullptr) {
    BackupParams p;
    p.chunk_size = kChunk;
    auto ct = EncryptBackup(key ? *key : key_, p, pt);
    EXPECT_TRUE(ct.ok()) << ct.status();
    return *ct;
  }
  // Decrypts and checks that the failure released no plaintext beyond the
  // chunks before `ok_chunks`.
  absl::Status Decrypt(std::span<const uint8_t> ct) {
    auto r = DecryptBackup(key_, ct);
    return r.status();
  }
  void ExpectError(std::span<const uint8_t> ct, absl::StatusCode code,
                   const std::string& what) {
    absl::Status s = Decrypt(ct);
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(what));
  }
  std::span<uint8_t> ChunkAt(std::vector<uint8_t>& ct, size_t i) {
    return std::span(ct).subspan(kHdr + i * kSealed, kSealed);
  }

  BackupKey key_ = BackupKey::Generate();
  std::vector<uint8_t> pt_ = Data(5 * kChunk + 100);  // 6 chunks
};

TEST_F(BackupFormatTest, RoundTripSizes) {
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{kChunk - 1}, size_t{kChunk},
        size_t{kChunk + 1}, size_t{3 * kChunk}, size_t{7 * kChunk + 13}}) {
    auto pt = Data(n);
    auto ct = Encrypt(pt);
    const size_t chunks = n / kChunk + 1;
    EXPECT_EQ(ct.size(), kHdr + chunks * kSealed) << n;
    auto back = DecryptBackup(key_, ct);
    ASSERT_TRUE(back.ok()) << n << " " << back.status();
    EXPECT_EQ(*back, pt) << n;
  }
}

TEST_F(BackupFormatTest, StreamingInOddPieces) {
  auto ct = Encrypt(pt_);
  BackupDecryptor dec(key_);
  std::vector<uint8_t> out;
  auto sink = [&](std::span<const uint8_t> p) {
    out.insert(out.end(), p.begin(), p.end());
    return absl::OkStatus();
  };
  for (size_t off = 0; off < ct.size(); off += 7) {
    ASSERT_TRUE(dec.Update(std::span(ct).subspan(
                               off, std::min<size_t>(7, ct.size() - off)),
                           sink)
                    .ok());
  }
  ASSERT_TRUE(dec.Finish(sink).ok());
  EXPECT_EQ(out, pt_);
  ASSERT_TRUE(dec.header().has_value());
  EXPECT_EQ(dec.header()->chunk_size(), kChunk);
}

TEST_F(BackupFormatTest, HeaderFieldsAndFreshSaltPerBackup) {
  auto a = Encrypt(pt_), b = Encrypt(pt_);
  auto ha = BackupHeader::Parse(a), hb = BackupHeader::Parse(b);
  ASSERT_TRUE(ha.ok() && hb.ok());
  EXPECT_EQ(ha->version(), 1);
  EXPECT_EQ(ha->compression(), BackupCompression::kNone);
  EXPECT_EQ(ha->content(), BackupContent::kFile);
  EXPECT_EQ(ha->BackupIdHex().size(), 32u);
  EXPECT_NE(ha->BackupIdHex(), hb->BackupIdHex());
  EXPECT_FALSE(
      std::equal(ha->salt().begin(), ha->salt().end(), hb->salt().begin()));
  EXPECT_NE(std::vector<uint8_t>(a.begin() + kHdr, a.end()),
            std::vector<uint8_t>(b.begin() + kHdr, b.end()));
}

TEST_F(BackupFormatTest, WrongKeyRejectedBeforeAnyPlaintext) {
  auto ct = Encrypt(pt_);
  BackupKey other = BackupKey::Generate();
  BackupDecryptor dec(other);
  size_t released = 0;
  absl::Status s = dec.Update(ct, [&](std::span<const uint8_t> p) {
    released += p.size();
    return absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), HasSubstr("wrong backup key"));
  EXPECT_EQ(released, 0u);
}

TEST_F(BackupFormatTest, TruncateAtEveryChunkBoundary) {
  auto ct = Encrypt(pt_);
  const size_t chunks = (ct.size() - kHdr) / kSealed;
  ExpectError(std::span(ct).first(kHdr), absl::StatusCode::kDataLoss,
              "no chunks after the header");
  for (size_t k = 1; k < chunks; ++k) {
    ExpectError(std::span(ct).first(kHdr + k * kSealed),
                absl::StatusCode::kDataLoss,
                "truncated after chunk " + std::to_string(k - 1) +
                    ": the final chunk is missing");
  }
}

TEST_F(BackupFormatTest, TruncateMidChunkAndMidHeader) {
  auto ct = Encrypt(pt_);
  for (size_t cut : {kHdr + 1, kHdr + kSealed - 1, kHdr + 3 * kSealed + 100,
                     ct.size() - 1}) {
    ExpectError(std::span(ct).first(cut), absl::StatusCode::kDataLoss,
                "truncated inside chunk");
  }
  ExpectError(std::span(ct).first(50), absl::StatusCode::kDataLoss,
              "header truncated: got 50 of 108");
  ExpectError({}, absl::StatusCode::kDataLoss, "no header");
}

TEST_F(BackupFormatTest, DropLastChunk) {
  auto ct = Encrypt(pt_);
  ct.erase(ct.end() - kSealed, ct.end());
  ExpectError(ct, absl::StatusCode::kDataLoss, "the final chunk is missing");
}

TEST_F(BackupFormatTest, SwapChunks) {
  auto ct = Encrypt(pt_);
  std::swap_ranges(ChunkAt(ct, 1).begin(), ChunkAt(ct, 1).end(),
                   ChunkAt(ct, 2).begin());
  ExpectError(ct, absl::StatusCode::kDataLoss,
              "chunk 1 is chunk 2: chunks reordered");
}

TEST_F(BackupFormatTest, DuplicateChunk) {
  auto ct = Encrypt(pt_);
  auto c1 = ChunkAt(ct, 1);
  std::vector<uint8_t> copy(c1.begin(), c1.end());
  ct.insert(ct.begin() + kHdr + 2 * kSealed, copy.begin(), copy.end());
  ExpectError(ct, absl::StatusCode::kDataLoss,
              "chunk 2 is a copy of chunk 1: chunks duplicated");
}

TEST_F(BackupFormatTest, ReorderChunks) {
  auto ct = Encrypt(pt_);
  // Rotate chunks 0..3 left by one.
  std::rotate(ct.begin() + kHdr, ct.begin() + kHdr + kSealed,
              ct.begin() + kHdr + 4 * kSealed);
  ExpectError(ct, absl::StatusCode::kDataLoss, "chunk 0 is chunk 1");
}

TEST_F(BackupFormatTest, MoveFinalChunkForward) {
  auto ct = Encrypt(pt_);
  const size_t chunks = (ct.size() - kHdr) / kSealed;
  // Final chunk moved to position 2 and the stream cut there.
  std::vector<uint8_t> cut(ct.begin(), ct.begin() + kHdr + 2 * kSealed);
  auto last = ChunkAt(ct, chunks - 1);
  cut.insert(cut.end(), last.begin(), last.end());
  ExpectError(cut, absl::StatusCode::kDataLoss, "chunk 2 is chunk 5");
}

TEST_F(BackupFormatTest, SpliceChunkFromAnotherBackupUnderSameKey) {
  auto a = Encrypt(pt_), b = Encrypt(pt_);
  std::copy(ChunkAt(b, 2).begin(), ChunkAt(b, 2).end(), ChunkAt(a, 2).begin());
  ExpectError(a, absl::StatusCode::kDataLoss,
              "chunk 2 failed authentication: modified, or taken from another "
              "backup");
}

TEST_F(BackupFormatTest, SpliceHeaderFromAnotherBackup) {
  auto a = Encrypt(pt_), b = Encrypt(pt_);
  std::copy(b.begin(), b.begin() + kHdr, a.begin());
  ExpectError(a, absl::StatusCode::kDataLoss, "chunk 0 failed authentication");
}

TEST_F(BackupFormatTest, AppendBytes) {
  for (size_t extra : {size_t{1}, size_t{16}, kSealed, kSealed + 5}) {
    auto ct = Encrypt(pt_);
    ct.insert(ct.end(), extra, 0x42);
    ExpectError(ct, absl::StatusCode::kDataLoss,
                "trailing data after the final chunk 5");
  }
}

TEST_F(BackupFormatTest, AppendCopyOfFinalChunk) {
  auto ct = Encrypt(pt_);
  auto last = ChunkAt(ct, 5);
  std::vector<uint8_t> copy(last.begin(), last.end());
  ct.insert(ct.end(), copy.begin(), copy.end());
  ExpectError(ct, absl::StatusCode::kDataLoss, "trailing data");
}

TEST_F(BackupFormatTest, FlipEveryHeaderBit) {
  auto ct = Encrypt(pt_);
  for (size_t bit = 0; bit < kHdr * 8; ++bit) {
    auto bad = ct;
    bad[bit / 8] ^= 1 << (bit % 8);
    absl::Status s = Decrypt(bad);
    ASSERT_FALSE(s.ok()) << bit;
    const std::string m(s.message());
    if (bit < 64) {
      EXPECT_THAT(m, HasSubstr("not a bkv backup")) << bit;
    } else {
      EXPECT_THAT(m, HasSubstr("backup header corrupted")) << bit;
    }
  }
}

TEST_F(BackupFormatTest, ForgedHeaderWithRecomputedCheckFailsCommitment) {
  // The check is unkeyed, so an attacker can recompute it; the key
  // commitment still rejects the changed header before any chunk.
  auto ct = Encrypt(pt_);
  for (size_t off : {size_t{11}, size_t{30}, size_t{60}, size_t{80}}) {
    auto bad = ct;
    bad[off] ^= (off == 11) ? 1 : 0x10;
    Sha512Digest d = Sha512({std::span<const uint8_t>(bad).first(100)});
    std::copy_n(d.begin(), 8, bad.begin() + 100);
    ExpectError(bad, absl::StatusCode::kPermissionDenied, "wrong backup key");
  }
}

TEST_F(BackupFormatTest, FlipBitInChunkBodyAndTag) {
  auto ct = Encrypt(pt_);
  auto body = ct;
  ChunkAt(body, 3)[10] ^= 0x01;
  ExpectError(body, absl::StatusCode::kDataLoss,
              "chunk 3 failed authentication");
  auto tag = ct;
  ChunkAt(tag, 4)[kSealed - 1] ^= 0x80;
  ExpectError(tag, absl::StatusCode::kDataLoss,
              "chunk 4 failed authentication");
  auto final_tag = ct;
  ChunkAt(final_tag, 5)[kSealed - 3] ^= 0x04;
  ExpectError(final_tag, absl::StatusCode::kDataLoss,
              "chunk 5 failed authentication");
}

TEST_F(BackupFormatTest, NoPlaintextReleasedFromFailingChunk) {
  auto ct = Encrypt(pt_);
  ChunkAt(ct, 3)[0] ^= 1;
  BackupDecryptor dec(key_);
  size_t released = 0;
  auto sink = [&](std::span<const uint8_t> p) {
    released += p.size();
    return absl::OkStatus();
  };
  absl::Status s = dec.Update(ct, sink);
  if (s.ok()) s = dec.Finish(sink);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(released, 3 * kChunk);
  // The error sticks.
  EXPECT_EQ(dec.Finish(sink).code(), s.code());
}

TEST_F(BackupFormatTest, ZeroLengthAndExactMultiples) {
  for (size_t n : {size_t{0}, size_t{kChunk}, size_t{4 * kChunk}}) {
    auto pt = Data(n);
    auto ct = Encrypt(pt);
    EXPECT_EQ(ct.size(), kHdr + (n / kChunk + 1) * kSealed);
    auto back = DecryptBackup(key_, ct);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, pt);
    // Dropping the empty final chunk of an exact multiple is caught.
    if (n > 0) {
      ExpectError(std::span(ct).first(ct.size() - kSealed),
                  absl::StatusCode::kDataLoss, "final chunk is missing");
    }
  }
}

TEST_F(BackupFormatTest, UnsupportedVersionAndChunkSize) {
  BackupParams p;
  p.chunk_size = 100;
  EXPECT_EQ(EncryptBackup(key_, p, pt_).status().code(),
            absl::StatusCode::kInvalidArgument);
  p.chunk_size = (16 << 20) + 1;
  EXPECT_FALSE(EncryptBackup(key_, p, pt_).ok());
}

TEST_F(BackupFormatTest, GarbageInput) {
  std::vector<uint8_t> g;
  for (int i = 0; i < 600; ++i) {
    g.push_back(static_cast<uint8_t>(i * 97 + 3));
    EXPECT_FALSE(DecryptBackup(key_, g).ok());
  }
  auto ct = Encrypt(pt_);
  std::vector<uint8_t> tail(ct.begin(), ct.begin() + kHdr);
  tail.resize(kHdr + 3 * kSealed, 0xaa);
  EXPECT_EQ(Decrypt(tail).code(), absl::StatusCode::kDataLoss);
}

// Issue 20.6: an object swapped for another backup under the same key must
// not pass for the backup the list names: the id in its authenticated
// header is checked before any plaintext.
TEST_F(BackupFormatTest, ExpectedIdRefusesAnotherBackup) {
  auto a = Encrypt(Data(600, 1));
  auto b = Encrypt(Data(600, 2));
  auto header_b = BackupHeader::Parse(std::span(b).first(kHdr));
  ASSERT_TRUE(header_b.ok());
  const std::string id_b = header_b->BackupIdHex();
  const auto sink_all = [](std::vector<uint8_t>& out) {
    return [&out](std::span<const uint8_t> pt) {
      out.insert(out.end(), pt.begin(), pt.end());
      return absl::OkStatus();
    };
  };
  std::vector<uint8_t> got;
  BackupDecryptor right(key_);
  right.ExpectBackupId(id_b);
  ASSERT_TRUE(right.Update(b, sink_all(got)).ok());
  ASSERT_TRUE(right.Finish(sink_all(got)).ok());
  EXPECT_EQ(got, Data(600, 2));

  got.clear();
  BackupDecryptor swapped(key_);
  swapped.ExpectBackupId(id_b);
  absl::Status s = swapped.Update(a, sink_all(got));
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("swapped or rolled back"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(id_b));
  EXPECT_TRUE(got.empty()) << "no plaintext of the wrong backup";
  EXPECT_EQ(swapped.Finish(sink_all(got)).code(), absl::StatusCode::kDataLoss);

  // A wrong key is still reported as such, not as a swap.
  BackupDecryptor other(BackupKey::Generate());
  other.ExpectBackupId(id_b);
  EXPECT_EQ(other.Update(a, sink_all(got)).code(),
            absl::StatusCode::kPermissionDenied);
}

}  // namespace
}  // namespace bkv
