#ifndef BKV_SERVER_VAULT_INTERNAL_H_
#define BKV_SERVER_VAULT_INTERNAL_H_

// Helpers shared by the Vault's v2 (vault.cc) and threshold
// (vault_threshold.cc) calls; not an interface of its own. The one
// read-decide-write loop (Mutate) lives here so that both protocols count
// through the same path.

#include <openssl/rand.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/ksf.h"
#include "crypto/opaque.h"
#include "crypto/secret_bytes.h"
#include "server/errors.h"
#include "server/log.h"
#include "server/record_cache.h"
#include "storage/record_store.h"

namespace bkv::server::vault_internal {

using storage::v1::UserRecord;
using vault::v1::ErrorDetail;

inline constexpr auto kNotCounted = ErrorDetail::ATTEMPT_NOT_COUNTED;
inline constexpr auto kSpent = ErrorDetail::ATTEMPT_SPENT;

inline constexpr int kMaxCasRetries = 64;

inline storage::v1::KsfParams ToProto(const Argon2idParams& p) {
  storage::v1::KsfParams k;
  k.set_iterations(p.iterations);
  k.set_memory_kib(p.memory_kib);
  k.set_parallelism(p.parallelism);
  return k;
}

inline Argon2idParams FromProto(const storage::v1::KsfParams& k) {
  return {k.iterations(), k.memory_kib(), k.parallelism()};
}

inline absl::Status FieldError(absl::string_view field, const absl::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", s.message()));
}

inline uint64_t RandomId() {
  uint64_t id = 0;
  while (id == 0) {
    if (RAND_bytes(reinterpret_cast<uint8_t*>(&id), sizeof id) != 1) {
      std::abort();  // no randomness: nothing safe to do
    }
  }
  return id;
}

// Stored records are trusted only as far as the store vouches for them;
// a stored OPAQUE record that doesn't parse is corruption, not user error.
inline absl::StatusOr<opaque::RegistrationRecord> StoredOpaqueRecord(
    const std::string& bytes) {
  auto rec = opaque::RegistrationRecord::Parse(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  if (!rec.ok()) {
    return absl::DataLossError(absl::StrCat("stored OPAQUE record is corrupt: ",
                                            rec.status().message()));
  }
  return rec;
}

// Every compare-and-swap lost to other requests: nothing was written.
inline absl::Status Contention() {
  return WithAttempt(
      WithDetail(absl::UnavailableError(
                     "too much contention on this account; retry shortly"),
                 ErrorDetail::REASON_VAULT_UNAVAILABLE),
      kNotCounted);
}

// What a failed write did: an I/O error on a synced write (kUnavailable from
// the store) leaves it unknown whether the record reached the disk, since
// its log entry may be replayed at restart. A full or read-only disk
// refuses before anything lands.
inline ErrorDetail::Attempt CountEffect(const absl::Status& write_failure) {
  return absl::IsUnavailable(write_failure) && !GetDetail(write_failure)
             ? ErrorDetail::ATTEMPT_UNSPECIFIED
             : kNotCounted;
}

inline absl::Status StateError(absl::string_view field, const absl::Status& s) {
  if (absl::IsDeadlineExceeded(s)) {
    return WithDetail(s, ErrorDetail::REASON_STATE_EXPIRED);
  }
  if (absl::IsInvalidArgument(s)) return FieldError(field, s);
  return s;  // HSM trouble: not the client's fault
}

// A step after a write that already landed failed: the answer stays what
// the write decided (refusing would tell the user a change failed while it
// is in force), and operators learn it here.
inline void LogAfterWrite(absl::string_view step, const absl::Status& s) {
  if (s.ok()) return;
  Log("error", "after_write_failed",
      {{"step", std::string(step)}, {"error", std::string(s.message())}});
}

inline std::span<const uint8_t> AsBytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// a || b without a copy outside SecretBytes.
inline SecretBytes Concat(std::string_view a, std::string_view b) {
  SecretBytes out = SecretBytes::Random(a.size() + b.size());
  auto w = out.RevealMutable();
  std::copy(a.begin(), a.end(), w.begin());
  std::copy(b.begin(), b.end(), w.begin() + a.size());
  return out;
}

// Whether the account's active registration is a realm's share (protocol v3):
// the v2 calls refuse it, so a share is never evaluated with the seed key.
inline bool IsThreshold(const UserRecord& r) {
  return r.has_realm() || r.has_pending_realm();
}

inline absl::Status ThresholdOnly() {
  return WithAttempt(
      WithDetail(absl::FailedPreconditionError(
                     "this account is registered with a threshold realm set: "
                     "use the protocol v3 (Threshold*) calls"),
                 ErrorDetail::REASON_REALM_MISMATCH),
      kNotCounted);
}

// A realm's deleted account keeps only its registration epoch
// (docs/threshold.md, "The realm record"): it reads as no record.
inline bool IsTombstone(const UserRecord& r) { return r.realm_tombstone(); }

// Read, decide with `decide`, compare-and-swap the decision's `next`; retry
// when another request won the race. Returns the decision that was written.
// The first round decides on the cached record when there is one; only a
// write proves it current (record_cache.h), so a cached round that writes
// nothing or loses its swap goes back to the store. `raw`: hand tombstones
// to `decide` as they are (the realm's register calls read their epoch).
template <typename Decide>
auto Mutate(storage::RecordStore& store, RecordCache& cache,
            absl::string_view account, Decide decide, bool raw = false)
    -> absl::StatusOr<decltype(decide(std::optional<UserRecord>()))> {
  const std::string_view id(account.data(), account.size());
  std::optional<UserRecord> cached = cache.Get(account);
  for (int i = 0; i < kMaxCasRetries; ++i) {
    const bool from_cache = cached.has_value();
    std::optional<UserRecord> current = std::exchange(cached, std::nullopt);
    if (!from_cache) {
      auto got = store.Get(id);
      if (got.ok()) {
        current = *std::move(got);
      } else if (!absl::IsNotFound(got.status())) {
        return got.status();
      }
    }
    // A tombstone reads as no record; whatever replaces it keeps its epoch.
    uint64_t tombstone_epoch = 0;
    const uint64_t expected =
        current ? current->version() : storage::RecordStore::kNoRecord;
    if (current && IsTombstone(*current) && !raw) {
      tombstone_epoch = current->realm_epoch();
      current.reset();
    }
    auto decision = decide(current);
    if (decision.next && tombstone_epoch > decision.next->realm_epoch()) {
      decision.next->set_realm_epoch(tombstone_epoch);
    }
    if (!decision.next) {
      if (from_cache) continue;
      return decision;
    }
    auto cas = store.CompareAndSwap(id, expected, *decision.next);
    if (cas.ok()) {
      decision.next->set_version(*cas);
      cache.Put(account, *decision.next);
      return decision;
    }
    cache.Erase(account);
    if (!absl::IsAborted(cas.status())) {
      // The store may hold the write anyway (a freshness head that failed
      // commits it later): a lock's shred is idempotent, so it runs now
      // rather than leave the old copies with the wrapped key on disk.
      if (decision.next->state() == storage::v1::RECORD_STATE_LOCKED &&
          CountEffect(cas.status()) == ErrorDetail::ATTEMPT_UNSPECIFIED) {
        (void)store.Shred(id);  // best effort: the caller reports `cas`
      }
      return cas.status();
    }
  }
  return Contention();
}

}  // namespace bkv::server::vault_internal

#endif  // BKV_SERVER_VAULT_INTERNAL_H_
