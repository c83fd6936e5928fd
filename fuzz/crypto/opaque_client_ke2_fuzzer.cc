// A hostile vault: arbitrary KE2 bytes against a real client login state.
// The client must answer InvalidLoginError() and nothing else.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "crypto/hash.h"
#include "crypto/opaque.h"

namespace {

class NoStretch final : public bkv::Ksf {
 public:
  absl::StatusOr<bkv::SecretBytes> Stretch(
      const bkv::SecretBytes& msg) const override {
    return msg.Clone();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static NoStretch ksf;
  static bkv::opaque::OpaqueClient client({}, ksf);
  auto start = client.GenerateKE1(
      bkv::SecretBytes::Copy(std::string_view("fuzz password")));
  if (!start.ok()) std::abort();
  auto ke3 = client.GenerateKE3(std::move(start->state),
                                std::span<const uint8_t>(data, size));
  if (ke3.ok() || !bkv::opaque::IsInvalidLogin(ke3.status())) std::abort();
  return 0;
}
