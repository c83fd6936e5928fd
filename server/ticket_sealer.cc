#include "server/ticket_sealer.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"

namespace bkv::server {
namespace {

constexpr std::string_view kKeyLabel = "bkv-vault/login-ticket-key/v1";
constexpr size_t kEpochSize = 4;

void PutBigEndian(uint64_t v, size_t n, std::vector<uint8_t>& out) {
  for (size_t i = n; i-- > 0;)
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

}  // namespace

uint32_t EpochTicketSealer::CurrentEpoch() const {
  return static_cast<uint32_t>(absl::ToUnixSeconds(clock_()) /
                               absl::ToInt64Seconds(kEpoch));
}

absl::StatusOr<std::shared_ptr<const AesGcmSealer>> EpochTicketSealer::KeyFor(
    uint32_t epoch) const {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = keys_.find(epoch); it != keys_.end()) return it->second;
  }
  std::vector<uint8_t> label(kKeyLabel.begin(), kKeyLabel.end());
  label.push_back(0x00);
  PutBigEndian(epoch, 8, label);
  BKV_ASSIGN_OR_RETURN(SecretBytes mac, seed_.HmacSha512(label));
  SecretBytes key = SecretBytes::Locked(AesGcmSealer::kKeySize);
  std::copy_n(mac.Reveal().begin(), key.size(), key.RevealMutable().begin());
  BKV_ASSIGN_OR_RETURN(AesGcmSealer sealer,
                       AesGcmSealer::Create(std::move(key)));
  auto shared = std::make_shared<const AesGcmSealer>(std::move(sealer));
  absl::MutexLock lock(&mu_);
  keys_.emplace(epoch, shared);
  // Only the epochs Open accepts stay.
  while (keys_.size() > 3) keys_.erase(keys_.begin());
  return shared;
}

absl::StatusOr<std::vector<uint8_t>> EpochTicketSealer::Seal(
    std::span<const uint8_t> plaintext,
    std::span<const uint8_t> associated_data) const {
  const uint32_t epoch = CurrentEpoch();
  BKV_ASSIGN_OR_RETURN(auto key, KeyFor(epoch));
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed,
                       key->Seal(plaintext, associated_data));
  std::vector<uint8_t> out;
  out.reserve(kEpochSize + sealed.size());
  PutBigEndian(epoch, kEpochSize, out);
  out.insert(out.end(), sealed.begin(), sealed.end());
  return out;
}

absl::StatusOr<std::vector<uint8_t>> EpochTicketSealer::Open(
    std::span<const uint8_t> sealed,
    std::span<const uint8_t> associated_data) const {
  if (sealed.size() <
      kEpochSize + AesGcmSealer::kNonceSize + AesGcmSealer::kTagSize) {
    return absl::DataLossError("authentication failed: ticket too short");
  }
  uint32_t epoch = 0;
  for (size_t i = 0; i < kEpochSize; ++i) epoch = (epoch << 8) | sealed[i];
  const uint32_t now = CurrentEpoch();
  if (epoch + 1 < now || epoch > now + 1) {
    return absl::DeadlineExceededError(
        "login_state has expired: start the login again");
  }
  BKV_ASSIGN_OR_RETURN(auto key, KeyFor(epoch));
  return key->Open(sealed.subspan(kEpochSize), associated_data);
}

}  // namespace bkv::server
