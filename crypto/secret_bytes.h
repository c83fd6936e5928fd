#ifndef BKV_CRYPTO_SECRET_BYTES_H_
#define BKV_CRYPTO_SECRET_BYTES_H_

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <span>
#include <string_view>

namespace bkv {

// SecretBytes owns key material, passwords and session secrets.
//
// Guarantees:
//  - the buffer is wiped with sodium_memzero before it is released (also on
//    move-assignment over an existing value);
//  - equality is constant time in the contents (the length is not secret);
//  - streaming or printing it yields "REDACTED", never the bytes;
//  - the bytes are reachable only through Reveal()/RevealMutable(), so every
//    use of a secret can be found with grep.
// Move-only: copies are explicit through Clone().
// Not thread-safe for concurrent mutation; const access from many threads is
// fine.
//
// Locked() buffers come from sodium_malloc: mlock'ed (never swapped), excluded
// from core dumps and surrounded by guard pages. They cost whole pages, so use
// them for long-lived keys only.
class SecretBytes {
 public:
  SecretBytes() = default;
  // n zero bytes.
  explicit SecretBytes(size_t n);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  static SecretBytes Copy(std::span<const uint8_t> bytes);
  static SecretBytes Copy(std::string_view bytes);
  static SecretBytes Random(size_t n);
  // n zero bytes in locked, non-dumpable memory. Aborts if the memory can't be
  // locked-allocated, as there is no safe fallback for a long-lived key.
  static SecretBytes Locked(size_t n);

  SecretBytes Clone() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  bool locked() const { return locked_; }

  std::span<const uint8_t> Reveal() const { return {data_, size_}; }
  std::span<uint8_t> RevealMutable() { return {data_, size_}; }
  std::string_view RevealAsString() const {
    return {reinterpret_cast<const char*>(data_), size_};
  }

  // Constant time in the contents; lengths are compared first (not secret).
  friend bool operator==(const SecretBytes& a, const SecretBytes& b);

  friend std::ostream& operator<<(std::ostream& os, const SecretBytes& s) {
    return os << "SecretBytes(REDACTED, " << s.size_ << " bytes)";
  }

 private:
  void Release();

  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool locked_ = false;
};

// Constant-time comparison of two public-length buffers (MACs, tags).
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

namespace internal {
// Test hook: called with every buffer right after it was wiped and just before
// it is freed, so a test can check the wipe without reading freed memory.
using SecretFreeHook = void (*)(const uint8_t* data, size_t size);
void SetSecretFreeHookForTesting(SecretFreeHook hook);
}  // namespace internal

}  // namespace bkv

#endif  // BKV_CRYPTO_SECRET_BYTES_H_
