#include "server/login_ticket.h"

#include <openssl/crypto.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/opaque.h"

namespace bkv::server {
namespace {

constexpr uint8_t kVersion = 2;
constexpr size_t kHeaderSize = 3 + 8 + 8 + 8 + kTicketBindingSize;
constexpr size_t kPlaintextSize = kHeaderSize + opaque::kServerLoginStateSize;
// Sealed tickets are far smaller; anything bigger is refused unread.
constexpr size_t kMaxSealedSize = 1024;

std::vector<uint8_t> Aad(absl::string_view account_id) {
  std::string aad = absl::StrCat("bkv-vault/login-ticket/v1",
                                 std::string(1, '\0'), account_id);
  return {aad.begin(), aad.end()};
}

void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 7; i >= 0; --i, v >>= 8) p[i] = static_cast<uint8_t>(v);
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}

}  // namespace

LoginTicket StatelessTicket(TicketPurpose purpose, uint64_t registration_id,
                            int64_t expires_ms) {
  return LoginTicket{
      purpose, false,      registration_id,
      0,       expires_ms, SecretBytes(opaque::kServerLoginStateSize),
      {}};
}

absl::StatusOr<std::vector<uint8_t>> SealTicket(const Sealer& sealer,
                                                absl::string_view account_id,
                                                const LoginTicket& ticket) {
  if (ticket.server_state.size() != opaque::kServerLoginStateSize) {
    return absl::InternalError("login ticket: server state has wrong size");
  }
  if (!ticket.binding.empty() && ticket.binding.size() != kTicketBindingSize) {
    return absl::InternalError("login ticket: binding has wrong size");
  }
  SecretBytes pt(kPlaintextSize);
  uint8_t* p = pt.RevealMutable().data();
  p[0] = kVersion;
  p[1] = static_cast<uint8_t>(ticket.purpose);
  p[2] = ticket.fake ? 1 : 0;
  PutU64(p + 3, ticket.registration_id);
  PutU64(p + 11, ticket.login_seq);
  PutU64(p + 19, static_cast<uint64_t>(ticket.expires_ms));
  std::copy(ticket.binding.begin(), ticket.binding.end(), p + 27);
  std::copy(ticket.server_state.Reveal().begin(),
            ticket.server_state.Reveal().end(), p + kHeaderSize);
  return sealer.Seal(pt.Reveal(), Aad(account_id));
}

absl::StatusOr<LoginTicket> OpenTicket(const Sealer& sealer,
                                       absl::string_view account_id,
                                       TicketPurpose purpose,
                                       std::span<const uint8_t> sealed,
                                       int64_t now_ms) {
  if (sealed.empty() || sealed.size() > kMaxSealedSize) {
    return absl::InvalidArgumentError(
        "login_state is missing or malformed: start the login again");
  }
  auto opened = sealer.Open(sealed, Aad(account_id));
  if (!opened.ok()) {
    if (opened.status().code() == absl::StatusCode::kDataLoss) {
      return absl::InvalidArgumentError(
          "login_state does not verify (altered, or issued for another "
          "account or vault): start the login again");
    }
    return opened.status();  // HSM trouble: not the client's fault
  }
  SecretBytes pt = SecretBytes::Copy(*opened);
  OPENSSL_cleanse(opened->data(), opened->size());
  const uint8_t* p = pt.Reveal().data();
  if (pt.size() != kPlaintextSize || p[0] != kVersion) {
    return absl::InvalidArgumentError(
        "login_state has an unknown format: start the login again");
  }
  if (p[1] != static_cast<uint8_t>(purpose)) {
    return absl::InvalidArgumentError(
        "login_state belongs to another step (registration, recovery or "
        "proof)");
  }
  LoginTicket t;
  t.purpose = purpose;
  t.fake = (p[2] & 1) != 0;
  t.registration_id = GetU64(p + 3);
  t.login_seq = GetU64(p + 11);
  t.expires_ms = static_cast<int64_t>(GetU64(p + 19));
  if (now_ms >= t.expires_ms) {
    return absl::DeadlineExceededError(
        "login_state has expired: finish within the time limit, start again");
  }
  t.binding.assign(p + 27, p + 27 + kTicketBindingSize);
  t.server_state = SecretBytes::Copy(pt.Reveal().subspan(kHeaderSize));
  return t;
}

}  // namespace bkv::server
