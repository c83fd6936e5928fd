// Arbitrary bytes as a sealed login state: OpenTicket must refuse them all
// (without a crash) and must still open a genuine ticket afterwards.
#include <cstdint>
#include <cstdlib>

#include "crypto/aes_gcm_sealer.h"
#include "crypto/opaque.h"
#include "server/login_ticket.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace bkv;  // NOLINT(build/namespaces): fuzzer main file
  static const AesGcmSealer* sealer =
      new AesGcmSealer(*AesGcmSealer::Create(SecretBytes::Random(32)));
  auto opened =
      server::OpenTicket(*sealer, "acct", server::TicketPurpose::kRecover,
                         std::span<const uint8_t>(data, size), 0);
  if (opened.ok()) std::abort();
  return 0;
}
