#ifndef BKV_CRYPTO_BYTE_IO_H_
#define BKV_CRYPTO_BYTE_IO_H_

// Big-endian encoders and bounds-checked decoders for the client's object
// layouts (repository v2, keyring): integers big-endian, `str` is u32 length
// || bytes. A reader that runs past its input stops reading and stays failed,
// so decoders check once at the end.

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bkv {

class ByteWriter {
 public:
  // Reserving up front also keeps GCC 12's -Wstringop-overflow from
  // misjudging the first growth of the vector (a known false positive).
  ByteWriter() { out_.reserve(128); }
  void Raw(std::span<const uint8_t> b) {
    out_.insert(out_.end(), b.begin(), b.end());
  }
  void Raw(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  void U8(uint8_t v) { out_.push_back(v); }
  void U32(uint32_t v) { Int(v, 4); }
  void U64(uint64_t v) { Int(v, 8); }
  void Str(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    Raw(s);
  }
  // str of raw bytes
  void Bytes(std::span<const uint8_t> b) {
    Str({reinterpret_cast<const char*>(b.data()), b.size()});
  }
  std::vector<uint8_t> Take() { return std::move(out_); }

 private:
  void Int(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}
  bool Raw(std::span<uint8_t> out) {
    if (!Need(out.size())) return false;
    std::memcpy(out.data(), in_.data() + pos_, out.size());
    pos_ += out.size();
    return true;
  }
  bool Magic(std::string_view m) {
    if (!Need(m.size()) ||
        std::memcmp(in_.data() + pos_, m.data(), m.size()) != 0) {
      return ok_ = false;
    }
    pos_ += m.size();
    return true;
  }
  uint8_t U8() { return static_cast<uint8_t>(Int(1)); }
  uint32_t U32() { return static_cast<uint32_t>(Int(4)); }
  uint64_t U64() { return Int(8); }
  std::string Str() {
    uint32_t n = U32();
    if (!Need(n)) return {};
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  // A count of items of at least `min_item` bytes each, bounded by what is
  // left, so a forged count cannot make the decoder allocate.
  uint32_t Count(size_t min_item) {
    uint32_t n = U32();
    if (ok_ && n > (in_.size() - pos_) / min_item) ok_ = false;
    return ok_ ? n : 0;
  }
  // Every byte consumed and nothing out of bounds.
  bool AtEnd() const { return ok_ && pos_ == in_.size(); }
  bool ok() const { return ok_; }

 private:
  bool Need(size_t n) {
    if (!ok_ || in_.size() - pos_ < n) ok_ = false;
    return ok_;
  }
  uint64_t Int(int n) {
    if (!Need(n)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | in_[pos_ + i];
    pos_ += n;
    return v;
  }
  std::span<const uint8_t> in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace bkv

#endif  // BKV_CRYPTO_BYTE_IO_H_
