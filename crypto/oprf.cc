#include "crypto/oprf.h"

#include <sodium.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "crypto/status_macros.h"

namespace bkv::oprf {
namespace {

const std::string& Context() {
  static const std::string* const kContext =
      new std::string("OPRFV1-\x00-ristretto255-SHA512", 28);
  return *kContext;
}

std::vector<uint8_t> Dst(std::string_view prefix) {
  std::vector<uint8_t> dst(prefix.begin(), prefix.end());
  dst.insert(dst.end(), Context().begin(), Context().end());
  return dst;
}

void AppendU16Len(std::vector<uint8_t>& out, size_t len) {
  out.push_back(static_cast<uint8_t>(len >> 8));
  out.push_back(static_cast<uint8_t>(len));
}

}  // namespace

std::span<const uint8_t> ContextString() { return AsBytes(Context()); }

absl::StatusOr<SecretBytes> DeriveKeyPair(std::span<const uint8_t> seed,
                                          std::span<const uint8_t> info) {
  static const std::vector<uint8_t> kDst = Dst("DeriveKeyPair");
  if (info.size() > 0xffff) {
    return absl::InvalidArgumentError("DeriveKeyPair: info too long");
  }
  // seed || I2OSP(len(info), 2) || info || I2OSP(counter, 1)
  SecretBytes input(seed.size() + 2 + info.size() + 1);
  auto buf = input.RevealMutable();
  std::copy(seed.begin(), seed.end(), buf.begin());
  buf[seed.size()] = static_cast<uint8_t>(info.size() >> 8);
  buf[seed.size() + 1] = static_cast<uint8_t>(info.size());
  std::copy(info.begin(), info.end(), buf.begin() + seed.size() + 2);
  for (int counter = 0; counter <= 255; ++counter) {
    buf[buf.size() - 1] = static_cast<uint8_t>(counter);
    BKV_ASSIGN_OR_RETURN(SecretBytes sk,
                         ristretto255::HashToScalar(input.Reveal(), kDst));
    if (ristretto255::IsCanonicalNonZeroScalar(sk.Reveal())) return sk;
  }
  return absl::InternalError("DeriveKeyPair: no non-zero scalar in 256 tries");
}

absl::StatusOr<Element> Blind(std::span<const uint8_t> input,
                              const SecretBytes& blind) {
  static const std::vector<uint8_t> kDst = Dst("HashToGroup-");
  BKV_ASSIGN_OR_RETURN(Element p, ristretto255::HashToGroup(input, kDst));
  // HashToGroup yields the identity with negligible probability; the
  // multiplication below rejects it (RFC 9497 §3.3.1 InvalidInputError).
  return ristretto255::ScalarMult(blind, p);
}

absl::StatusOr<Element> BlindEvaluate(const SecretBytes& sk,
                                      const Element& blinded) {
  return ristretto255::ScalarMult(sk, blinded);
}

absl::StatusOr<SecretBytes> Finalize(std::span<const uint8_t> input,
                                     const SecretBytes& blind,
                                     const Element& evaluated) {
  if (input.size() > 0xffff) {
    return absl::InvalidArgumentError("OPRF input longer than 65535 bytes");
  }
  BKV_ASSIGN_OR_RETURN(SecretBytes inverse, ristretto255::ScalarInvert(blind));
  BKV_ASSIGN_OR_RETURN(Element n, ristretto255::ScalarMult(inverse, evaluated));
  std::vector<uint8_t> len_input, len_element;
  AppendU16Len(len_input, input.size());
  AppendU16Len(len_element, n.size());
  Sha512Digest out =
      Sha512({len_input, input, len_element, n, AsBytes("Finalize")});
  SecretBytes result = SecretBytes::Copy(out);
  sodium_memzero(out.data(), out.size());
  sodium_memzero(n.data(), n.size());  // the unblinded password element
  return result;
}

}  // namespace bkv::oprf
