#ifndef BKV_SERVER_TICKET_SEALER_H_
#define BKV_SERVER_TICKET_SEALER_H_

// The Sealer for login tickets (login_ticket.h): AES-256-GCM in process under
// a key the HSM derives once per hour from the OPRF seed, instead of one HSM
// seal at Start and one HSM open at Finish per login. Every node derives the
// same key from its (cloned) seed, so any node opens any node's ticket.
//
// Sealed layout:
//   +-------------------+------------+---------------------+----------+
//   | epoch (u32 BE)    | nonce (12) | ciphertext          | tag (16) |
//   +-------------------+------------+---------------------+----------+
//   epoch = Unix time / 3600 s at sealing
//   key(epoch) = HMAC-SHA512(OPRF seed, "bkv-vault/login-ticket-key/v1"
//                            || 0x00 || epoch as u64 BE)[0..32)
// The seed's other inputs end in "OprfKey" or "bkv-FakeRecord" plus an HKDF
// counter, or are the 32-byte audit label, so none equals a ticket-key input.
//
// Opens tickets of the previous, current and next epoch (tickets live
// minutes; nodes' clocks may differ); others are DeadlineExceeded. A ticket
// key in memory forges tickets only for its epoch: what a reader of the
// vault's memory gains ends an hour after its access does
// (docs/threat-model.md). Thread-safe; keeps at most three keys.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "crypto/aes_gcm_sealer.h"
#include "crypto/keyed_hash.h"
#include "crypto/sealer.h"

namespace bkv::server {

class EpochTicketSealer final : public Sealer {
 public:
  static constexpr absl::Duration kEpoch = absl::Hours(1);

  // `seed` must outlive this object.
  explicit EpochTicketSealer(const KeyedHash& seed,
                             std::function<absl::Time()> clock = absl::Now)
      : seed_(seed), clock_(std::move(clock)) {}

  absl::StatusOr<std::vector<uint8_t>> Seal(
      std::span<const uint8_t> plaintext,
      std::span<const uint8_t> associated_data) const override;
  // DataLoss for bytes that do not verify; DeadlineExceeded for an epoch
  // out of range; the HSM's error if it cannot derive the key.
  absl::StatusOr<std::vector<uint8_t>> Open(
      std::span<const uint8_t> sealed,
      std::span<const uint8_t> associated_data) const override;

 private:
  uint32_t CurrentEpoch() const;
  absl::StatusOr<std::shared_ptr<const AesGcmSealer>> KeyFor(
      uint32_t epoch) const;

  const KeyedHash& seed_;
  const std::function<absl::Time()> clock_;
  mutable absl::Mutex mu_;
  mutable std::map<uint32_t, std::shared_ptr<const AesGcmSealer>> keys_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace bkv::server

#endif  // BKV_SERVER_TICKET_SEALER_H_
