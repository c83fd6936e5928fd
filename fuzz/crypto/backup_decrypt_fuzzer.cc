// BackupDecryptor under a fixed key, two ways chosen by the first byte:
//  - even: the rest is a raw stream, fed in pieces whose size comes from the
//    second byte; nothing may crash, and a stream that decrypts must decrypt
//    the same way in one piece;
//  - odd: the rest is plaintext; it is encrypted (deterministic salt), one
//    bit at an input-chosen offset is flipped or the stream is cut there,
//    and decryption must fail (or round-trip when nothing changed). This
//    reaches the chunk and diagnosis paths without a seed corpus.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "crypto/backup_format.h"

namespace {
const bkv::BackupKey& FuzzKey() {
  static const bkv::BackupKey* key = [] {
    auto k = bkv::BackupKey::Parse(
        "0001 0203 0405 0607 0809 0a0b 0c0d 0e0f "
        "1011 1213 1415 1617 1819 1a1b 1c1d 1e1f");
    return new bkv::BackupKey(std::move(*k));
  }();
  return *key;
}
}  // namespace

class CounterRandom final : public bkv::RandomSource {
 public:
  void Bytes(std::span<uint8_t> out) const override {
    for (auto& b : out) b = static_cast<uint8_t>(n_++);
  }
  bkv::SecretBytes Scalar() const override { return bkv::SecretBytes(32); }

 private:
  mutable uint8_t n_ = 0;
};

int TamperMode(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const uint32_t where = (uint32_t{data[1]} << 16) | (data[2] << 8) | data[3];
  const bool cut = data[4] & 1;
  std::span<const uint8_t> pt(data + 5, size - 5);
  bkv::BackupParams params;
  params.chunk_size = 256;
  auto enc = bkv::BackupEncryptor::Create(FuzzKey(), params, CounterRandom());
  std::vector<uint8_t> ct(enc->header().bytes().begin(),
                          enc->header().bytes().end());
  const size_t sealed = bkv::SealedChunkSize(256);
  size_t off = 0;
  for (; pt.size() - off >= 256; off += 256) {
    ct.resize(ct.size() + sealed);
    if (!enc->SealChunk(pt.subspan(off, 256), std::span(ct).last(sealed)).ok())
      std::abort();
  }
  ct.resize(ct.size() + sealed);
  if (!enc->SealFinalChunk(pt.subspan(off), std::span(ct).last(sealed)).ok())
    std::abort();
  const size_t pos = where % (ct.size() + 1);
  bool changed = true;
  if (cut) {
    changed = pos != ct.size();
    ct.resize(pos);
  } else if (pos < ct.size()) {
    ct[pos] ^= static_cast<uint8_t>(1 << (data[4] >> 5));
  } else {
    changed = false;
  }
  auto out = bkv::DecryptBackup(FuzzKey(), ct);
  if (changed && out.ok()) std::abort();
  if (!changed && (!out.ok() || !std::equal(out->begin(), out->end(),
                                            pt.begin(), pt.end()))) {
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) return TamperMode(data, size);
  const size_t piece = 1 + data[0] % 200;
  std::span<const uint8_t> in(data + 1, size - 1);
  bkv::BackupDecryptor dec(FuzzKey());
  std::vector<uint8_t> out;
  auto sink = [&](std::span<const uint8_t> p) {
    out.insert(out.end(), p.begin(), p.end());
    return absl::OkStatus();
  };
  absl::Status s;
  for (size_t off = 0; off < in.size() && s.ok(); off += piece) {
    s = dec.Update(in.subspan(off, std::min(piece, in.size() - off)), sink);
  }
  if (s.ok()) s = dec.Finish(sink);
  if (s.ok()) {
    auto whole = bkv::DecryptBackup(FuzzKey(), in);
    if (!whole.ok() || *whole != out) std::abort();
  }
  return 0;
}
