#include "crypto/ristretto255.h"

#include <sodium.h>

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace bkv::ristretto255 {
namespace {

constexpr size_t kSha512Block = 128;

// The group order L, little endian.
constexpr uint8_t kOrder[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58,
                                0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

void Sha512Update(crypto_hash_sha512_state& st, std::span<const uint8_t> b) {
  if (!b.empty()) crypto_hash_sha512_update(&st, b.data(), b.size());
}

}  // namespace

absl::StatusOr<SecretBytes> ExpandMessageXmdSha512(std::span<const uint8_t> msg,
                                                   std::span<const uint8_t> dst,
                                                   size_t len_in_bytes) {
  const size_t ell =
      (len_in_bytes + crypto_hash_sha512_BYTES - 1) / crypto_hash_sha512_BYTES;
  if (ell == 0 || ell > 255 || len_in_bytes > 65535 || dst.size() > 255) {
    return absl::InvalidArgumentError(
        "expand_message_xmd: output length or DST length out of range");
  }
  const uint8_t dst_len = static_cast<uint8_t>(dst.size());
  const uint8_t zeros[kSha512Block] = {};
  const uint8_t l_i_b[2] = {static_cast<uint8_t>(len_in_bytes >> 8),
                            static_cast<uint8_t>(len_in_bytes)};

  // b_0 = H(Z_pad || msg || l_i_b_str || I2OSP(0, 1) || DST_prime)
  uint8_t b0[crypto_hash_sha512_BYTES];
  crypto_hash_sha512_state st;
  crypto_hash_sha512_init(&st);
  Sha512Update(st, zeros);
  Sha512Update(st, msg);
  Sha512Update(st, l_i_b);
  Sha512Update(st, std::span<const uint8_t>(zeros, 1));
  Sha512Update(st, dst);
  Sha512Update(st, std::span<const uint8_t>(&dst_len, 1));
  crypto_hash_sha512_final(&st, b0);

  SecretBytes out(len_in_bytes);
  uint8_t bi[crypto_hash_sha512_BYTES] = {};  // b_(i-1); b_0 xor 0 for i = 1
  for (size_t i = 1; i <= ell; ++i) {
    uint8_t x[crypto_hash_sha512_BYTES];
    for (size_t j = 0; j < sizeof x; ++j) x[j] = b0[j] ^ bi[j];
    const uint8_t idx = static_cast<uint8_t>(i);
    crypto_hash_sha512_init(&st);
    // b_i = H((b_0 xor b_(i-1)) || i || DST'), where b_0 xor "b_0" := b_0.
    Sha512Update(st, x);
    Sha512Update(st, std::span<const uint8_t>(&idx, 1));
    Sha512Update(st, dst);
    Sha512Update(st, std::span<const uint8_t>(&dst_len, 1));
    crypto_hash_sha512_final(&st, bi);
    const size_t off = (i - 1) * crypto_hash_sha512_BYTES;
    const size_t n =
        std::min<size_t>(crypto_hash_sha512_BYTES, len_in_bytes - off);
    std::copy_n(bi, n, out.RevealMutable().begin() + off);
    sodium_memzero(x, sizeof x);
  }
  sodium_memzero(b0, sizeof b0);
  sodium_memzero(bi, sizeof bi);
  sodium_memzero(&st, sizeof st);  // it absorbed the message (a password)
  return out;
}

absl::StatusOr<Element> HashToGroup(std::span<const uint8_t> msg,
                                    std::span<const uint8_t> dst) {
  auto uniform = ExpandMessageXmdSha512(msg, dst, 64);
  if (!uniform.ok()) return uniform.status();
  Element p;
  if (crypto_core_ristretto255_from_hash(p.data(), uniform->Reveal().data()) !=
      0) {
    return absl::InternalError("ristretto255 from_hash failed");
  }
  return p;
}

absl::StatusOr<SecretBytes> HashToScalar(std::span<const uint8_t> msg,
                                         std::span<const uint8_t> dst) {
  auto uniform = ExpandMessageXmdSha512(msg, dst, 64);
  if (!uniform.ok()) return uniform.status();
  SecretBytes s(kScalarSize);
  crypto_core_ristretto255_scalar_reduce(s.RevealMutable().data(),
                                         uniform->Reveal().data());
  return s;
}

absl::StatusOr<Element> DeserializeElement(std::span<const uint8_t> bytes,
                                           absl::string_view what) {
  if (bytes.size() != kElementSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": a ristretto255 element is 32 bytes, got ", bytes.size()));
  }
  // libsodium's is_valid_point accepts the identity (all zeros); RFC 9497
  // §2.1 requires rejecting it.
  if (sodium_is_zero(bytes.data(), bytes.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the identity element is not allowed"));
  }
  // libsodium 1.0.18 ignores the top bit of the last byte; RFC 9496 §4.3.1
  // rejects it (s >= 2^255 > p is not canonical).
  if ((bytes[kElementSize - 1] & 0x80) != 0 ||
      crypto_core_ristretto255_is_valid_point(bytes.data()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a canonical ristretto255 encoding"));
  }
  Element e;
  std::copy(bytes.begin(), bytes.end(), e.begin());
  return e;
}

bool IsCanonicalNonZeroScalar(std::span<const uint8_t> s) {
  if (s.size() != kScalarSize || sodium_is_zero(s.data(), s.size())) {
    return false;
  }
  // s < L, compared from the most significant byte; timing reveals only
  // where s first differs from the public constant L.
  for (int i = kScalarSize - 1; i >= 0; --i) {
    if (s[i] < kOrder[i]) return true;
    if (s[i] > kOrder[i]) return false;
  }
  return false;  // s == L
}

absl::StatusOr<SecretBytes> DeserializeScalar(std::span<const uint8_t> bytes,
                                              absl::string_view what) {
  if (bytes.size() != kScalarSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": a ristretto255 scalar is 32 bytes, got ", bytes.size()));
  }
  if (!IsCanonicalNonZeroScalar(bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": scalar is zero or not reduced modulo the group order"));
  }
  return SecretBytes::Copy(bytes);
}

absl::StatusOr<Element> ScalarMult(const SecretBytes& scalar,
                                   const Element& element) {
  Element q;
  if (scalar.size() != kScalarSize ||
      crypto_scalarmult_ristretto255(q.data(), scalar.Reveal().data(),
                                     element.data()) != 0) {
    return absl::InvalidArgumentError(
        "ristretto255 scalar multiplication gave the identity");
  }
  return q;
}

absl::StatusOr<Element> ScalarMultBase(const SecretBytes& scalar) {
  Element q;
  if (scalar.size() != kScalarSize ||
      crypto_scalarmult_ristretto255_base(q.data(), scalar.Reveal().data()) !=
          0) {
    return absl::InvalidArgumentError("ristretto255 scalar is zero");
  }
  return q;
}

absl::StatusOr<SecretBytes> ScalarInvert(const SecretBytes& scalar) {
  SecretBytes inv(kScalarSize);
  if (scalar.size() != kScalarSize ||
      crypto_core_ristretto255_scalar_invert(inv.RevealMutable().data(),
                                             scalar.Reveal().data()) != 0) {
    return absl::InvalidArgumentError("cannot invert a zero scalar");
  }
  return inv;
}

namespace {

using ScalarOp = void (*)(unsigned char*, const unsigned char*,
                          const unsigned char*);

absl::StatusOr<SecretBytes> ScalarBinary(ScalarOp op, const SecretBytes& x,
                                         const SecretBytes& y) {
  if (x.size() != kScalarSize || y.size() != kScalarSize) {
    return absl::InvalidArgumentError("ristretto255 scalars are 32 bytes");
  }
  SecretBytes z(kScalarSize);
  op(z.RevealMutable().data(), x.Reveal().data(), y.Reveal().data());
  return z;
}

}  // namespace

absl::StatusOr<SecretBytes> ScalarAdd(const SecretBytes& x,
                                      const SecretBytes& y) {
  return ScalarBinary(crypto_core_ristretto255_scalar_add, x, y);
}

absl::StatusOr<SecretBytes> ScalarSub(const SecretBytes& x,
                                      const SecretBytes& y) {
  return ScalarBinary(crypto_core_ristretto255_scalar_sub, x, y);
}

absl::StatusOr<SecretBytes> ScalarMul(const SecretBytes& x,
                                      const SecretBytes& y) {
  return ScalarBinary(crypto_core_ristretto255_scalar_mul, x, y);
}

SecretBytes SmallScalar(uint32_t v) {
  SecretBytes s(kScalarSize);
  for (int i = 0; i < 4; ++i) {
    s.RevealMutable()[i] = static_cast<uint8_t>(v >> (8 * i));
  }
  return s;
}

absl::StatusOr<Element> ElementAdd(const Element& p, const Element& q) {
  Element r;
  if (crypto_core_ristretto255_add(r.data(), p.data(), q.data()) != 0) {
    return absl::InvalidArgumentError("not a ristretto255 element");
  }
  return r;
}

}  // namespace bkv::ristretto255
