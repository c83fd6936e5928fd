#ifndef BKV_CRYPTO_KSF_H_
#define BKV_CRYPTO_KSF_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "crypto/secret_bytes.h"

namespace bkv {

// A key stretching function, RFC 9807 §4.3: Stretch(msg) hardens the OPRF
// output against offline guessing by whoever holds the OPAQUE record.
class Ksf {
 public:
  virtual ~Ksf() = default;
  virtual absl::StatusOr<SecretBytes> Stretch(const SecretBytes& msg) const = 0;
};

// Argon2id v1.3 (RFC 9106) parameters. The salt is 16 zero bytes and the
// output 64 bytes, as RFC 9807 §4.3 fixes them; these three are the tunables
// a client registers with and the vault stores beside the record.
struct Argon2idParams {
  uint32_t iterations = 3;      // t
  uint32_t memory_kib = 65536;  // m, in KiB
  uint32_t parallelism = 4;     // p (lanes and threads)

  // Structural limits (libargon2's, plus a 4 GiB memory cap so a hostile
  // vault can't make a client allocate without bound). Policy floors belong
  // to the caller.
  absl::Status Validate() const;
  friend bool operator==(const Argon2idParams&,
                         const Argon2idParams&) = default;
};

// Argon2id through libargon2 (libsodium's crypto_pwhash fixes p = 1).
// Thread-safe; each call allocates memory_kib KiB and runs p threads.
class Argon2idKsf final : public Ksf {
 public:
  static absl::StatusOr<Argon2idKsf> Create(Argon2idParams params);
  absl::StatusOr<SecretBytes> Stretch(const SecretBytes& msg) const override;
  const Argon2idParams& params() const { return params_; }

 private:
  explicit Argon2idKsf(Argon2idParams p) : params_(p) {}
  Argon2idParams params_;
};

}  // namespace bkv

#endif  // BKV_CRYPTO_KSF_H_
