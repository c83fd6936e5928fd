#include "crypto/secret_bytes.h"

#include <sodium.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

namespace bkv {
namespace {

std::atomic<internal::SecretFreeHook> g_free_hook{nullptr};

void EnsureSodium() {
  // sodium_init is idempotent and thread-safe; it fails only without entropy.
  if (sodium_init() < 0) std::abort();
}

}  // namespace

namespace internal {
void SetSecretFreeHookForTesting(SecretFreeHook hook) { g_free_hook = hook; }
}  // namespace internal

SecretBytes::SecretBytes(size_t n) : size_(n) {
  if (n == 0) return;
  data_ = new uint8_t[n]();
}

SecretBytes SecretBytes::Locked(size_t n) {
  EnsureSodium();
  SecretBytes s;
  // sodium_malloc(0) is valid and still returns a guarded region.
  void* p = sodium_malloc(n == 0 ? 1 : n);
  if (p == nullptr) std::abort();
  sodium_memzero(p, n == 0 ? 1 : n);
  s.data_ = static_cast<uint8_t*>(p);
  s.size_ = n;
  s.locked_ = true;
  return s;
}

SecretBytes::~SecretBytes() { Release(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept
    : data_(other.data_), size_(other.size_), locked_(other.locked_) {
  other.data_ = nullptr;
  other.size_ = 0;
  other.locked_ = false;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = other.data_;
    size_ = other.size_;
    locked_ = other.locked_;
    other.data_ = nullptr;
    other.size_ = 0;
    other.locked_ = false;
  }
  return *this;
}

void SecretBytes::Release() {
  if (data_ == nullptr) return;
  sodium_memzero(data_, size_);
  if (auto hook = g_free_hook.load()) hook(data_, size_);
  if (locked_) {
    sodium_free(data_);  // wipes again and unlocks
  } else {
    delete[] data_;
  }
  data_ = nullptr;
  size_ = 0;
  locked_ = false;
}

SecretBytes SecretBytes::Copy(std::span<const uint8_t> bytes) {
  SecretBytes s(bytes.size());
  if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
  return s;
}

SecretBytes SecretBytes::Copy(std::string_view bytes) {
  return Copy(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

SecretBytes SecretBytes::Random(size_t n) {
  EnsureSodium();
  SecretBytes s(n);
  if (n != 0) randombytes_buf(s.data_, n);
  return s;
}

SecretBytes SecretBytes::Clone() const {
  SecretBytes s = locked_ ? Locked(size_) : SecretBytes(size_);
  if (size_ != 0) std::memcpy(s.data_, data_, size_);
  return s;
}

bool operator==(const SecretBytes& a, const SecretBytes& b) {
  return ConstantTimeEquals(a.Reveal(), b.Reveal());
}

bool ConstantTimeEquals(std::span<const uint8_t> a,
                        std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace bkv
