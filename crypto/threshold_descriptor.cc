#include "crypto/threshold_descriptor.h"

#include <sodium.h>

#include <string_view>

#include "absl/strings/str_cat.h"
#include "crypto/hash.h"
#include "crypto/realm_set.h"
#include "crypto/shamir.h"
#include "crypto/status_macros.h"
#include "crypto/threshold_limits.h"

namespace bkv::threshold {
namespace {

constexpr std::string_view kLabel = "bkv-threshold-descriptor/v1";

void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(v >> shift));
  }
}

// Reads fields in order; every read names the field when the input ends.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> in) : in_(in) {}

  absl::StatusOr<std::span<const uint8_t>> Take(size_t n,
                                                absl::string_view what) {
    if (in_.size() < n) {
      return absl::InvalidArgumentError(
          absl::StrCat("threshold descriptor: truncated at ", what));
    }
    auto out = in_.first(n);
    in_ = in_.subspan(n);
    return out;
  }
  absl::StatusOr<uint32_t> U32(absl::string_view what) {
    BKV_ASSIGN_OR_RETURN(auto b, Take(4, what));
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) |
           (uint32_t{b[2]} << 8) | b[3];
  }
  absl::StatusOr<ristretto255::Element> Element(absl::string_view what) {
    BKV_ASSIGN_OR_RETURN(auto b, Take(ristretto255::kElementSize, what));
    return ristretto255::DeserializeElement(
        b, absl::StrCat("threshold descriptor ", what));
  }
  template <size_t N>
  absl::Status Copy(std::array<uint8_t, N>& out, absl::string_view what) {
    BKV_ASSIGN_OR_RETURN(auto b, Take(N, what));
    std::copy(b.begin(), b.end(), out.begin());
    return absl::OkStatus();
  }
  bool done() const { return in_.empty(); }

 private:
  std::span<const uint8_t> in_;
};

absl::StatusOr<DescriptorRealm> ParseRealm(Reader& r) {
  DescriptorRealm realm;
  BKV_ASSIGN_OR_RETURN(auto len, r.Take(1, "realm id length"));
  BKV_ASSIGN_OR_RETURN(auto id, r.Take(len[0], "realm id"));
  realm.realm_id.assign(id.begin(), id.end());
  BKV_RETURN_IF_ERROR(CheckRealmId(realm.realm_id));
  BKV_ASSIGN_OR_RETURN(realm.identity_key, r.Element("identity key"));
  BKV_ASSIGN_OR_RETURN(realm.public_share, r.Element("public share"));
  BKV_ASSIGN_OR_RETURN(realm.second_public_share,
                       r.Element("second public share"));
  return realm;
}

absl::Status CheckKsfFloor(const Argon2idParams& ksf) {
  BKV_RETURN_IF_ERROR(ksf.Validate());
  if (ksf.iterations < kMinKsf.iterations ||
      ksf.memory_kib < kMinKsf.memory_kib) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threshold descriptor: KSF ", ksf.iterations, " passes over ",
        ksf.memory_kib, " KiB is below the floor of ", kMinKsf.iterations,
        " pass over ", kMinKsf.memory_kib,
        " KiB; register with stronger "
        "Argon2id parameters"));
  }
  return absl::OkStatus();
}

// Realm ids and identity keys each appear once: a realm listed twice would
// hold two shares, i.e. count for two of the t.
absl::Status CheckDistinctRealms(std::span<const DescriptorRealm> realms) {
  for (size_t i = 0; i < realms.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (realms[i].realm_id == realms[j].realm_id) {
        return absl::InvalidArgumentError(
            absl::StrCat("threshold descriptor: realm id '", realms[i].realm_id,
                         "' appears twice"));
      }
      if (realms[i].identity_key == realms[j].identity_key) {
        return absl::InvalidArgumentError(absl::StrCat(
            "threshold descriptor: realms '", realms[j].realm_id, "' and '",
            realms[i].realm_id, "' have the same identity key"));
      }
    }
  }
  return absl::OkStatus();
}

// Both dealings (K_i for k, S_i for s) on a polynomial of degree t - 1.
absl::Status CheckDealings(const Descriptor& d) {
  std::vector<shamir::Point> k_shares, s_shares;
  for (size_t i = 0; i < d.realms.size(); ++i) {
    const auto index = static_cast<uint8_t>(i + 1);
    k_shares.push_back({index, d.realms[i].public_share});
    s_shares.push_back({index, d.realms[i].second_public_share});
  }
  BKV_RETURN_IF_ERROR(shamir::CheckPublicShares(d.public_key, k_shares, d.t));
  return shamir::CheckPublicShares(d.second_public_key, s_shares, d.t);
}

// What the layout cannot express: the realm-set rule, G, the KSF floor and
// distinct realms (the shares' consistency with K and S: CheckDealings).
absl::Status CheckSemantics(const Descriptor& d) {
  const int n = static_cast<int>(d.realms.size());
  if (d.epoch == 0) {
    return absl::InvalidArgumentError(
        "threshold descriptor: registration epochs start at 1");
  }
  BKV_RETURN_IF_ERROR(CheckThresholdRule(n, d.t));
  BKV_ASSIGN_OR_RETURN(AttemptLimits limits,
                       ComputeAttemptLimits(d.advertised_limit, n, d.t));
  if (limits.per_realm != d.per_realm_limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threshold descriptor: per-realm limit ", d.per_realm_limit,
        " is not floor(L / (n - t + 1)) = ", limits.per_realm));
  }
  BKV_RETURN_IF_ERROR(CheckKsfFloor(d.ksf));
  return CheckDistinctRealms(d.realms);
}

}  // namespace

absl::StatusOr<Descriptor> Descriptor::Parse(std::span<const uint8_t> bytes) {
  BKV_ASSIGN_OR_RETURN(Descriptor d, ParseSealed(bytes));
  BKV_RETURN_IF_ERROR(CheckDealings(d));
  return d;
}

absl::StatusOr<Descriptor> Descriptor::ParseSealed(
    std::span<const uint8_t> bytes) {
  Reader r(bytes);
  Descriptor d;
  BKV_ASSIGN_OR_RETURN(auto label, r.Take(kLabel.size(), "label"));
  if (!std::equal(label.begin(), label.end(), kLabel.begin())) {
    return absl::InvalidArgumentError(
        "not a threshold descriptor (label mismatch)");
  }
  BKV_RETURN_IF_ERROR(r.Copy(d.version, "version"));
  BKV_ASSIGN_OR_RETURN(uint32_t epoch_high, r.U32("epoch"));
  BKV_ASSIGN_OR_RETURN(uint32_t epoch_low, r.U32("epoch"));
  d.epoch = (uint64_t{epoch_high} << 32) | epoch_low;
  BKV_RETURN_IF_ERROR(r.Copy(d.previous_commitment, "previous commitment"));
  BKV_ASSIGN_OR_RETURN(auto nt, r.Take(2, "n and t"));
  d.t = nt[1];
  BKV_ASSIGN_OR_RETURN(d.advertised_limit, r.U32("attempt limit"));
  BKV_ASSIGN_OR_RETURN(d.per_realm_limit, r.U32("per-realm limit"));
  BKV_ASSIGN_OR_RETURN(d.ksf.iterations, r.U32("ksf iterations"));
  BKV_ASSIGN_OR_RETURN(d.ksf.memory_kib, r.U32("ksf memory"));
  BKV_ASSIGN_OR_RETURN(d.ksf.parallelism, r.U32("ksf parallelism"));
  BKV_ASSIGN_OR_RETURN(d.public_key, r.Element("public key"));
  BKV_ASSIGN_OR_RETURN(d.second_public_key, r.Element("second public key"));
  if (nt[0] < 1 || nt[0] > kMaxRealms) {
    return absl::InvalidArgumentError(
        absl::StrCat("threshold descriptor: ", nt[0], " realms"));
  }
  for (int i = 0; i < nt[0]; ++i) {
    BKV_ASSIGN_OR_RETURN(DescriptorRealm realm, ParseRealm(r));
    d.realms.push_back(std::move(realm));
  }
  BKV_RETURN_IF_ERROR(r.Copy(d.wrapped_hash, "wrapped key hash"));
  BKV_RETURN_IF_ERROR(r.Copy(d.commit_hash, "commit hash"));
  if (!r.done()) {
    return absl::InvalidArgumentError("threshold descriptor: trailing bytes");
  }
  BKV_RETURN_IF_ERROR(CheckSemantics(d));
  return d;
}

std::vector<uint8_t> Descriptor::Serialize() const {
  std::vector<uint8_t> out;
  AppendBytes(out, AsBytes(kLabel));
  AppendBytes(out, version);
  PutU32(out, static_cast<uint32_t>(epoch >> 32));
  PutU32(out, static_cast<uint32_t>(epoch));
  AppendBytes(out, previous_commitment);
  out.push_back(static_cast<uint8_t>(realms.size()));
  out.push_back(static_cast<uint8_t>(t));
  for (uint32_t v : {advertised_limit, per_realm_limit, ksf.iterations,
                     ksf.memory_kib, ksf.parallelism}) {
    PutU32(out, v);
  }
  AppendBytes(out, public_key);
  AppendBytes(out, second_public_key);
  for (const DescriptorRealm& realm : realms) {
    out.push_back(static_cast<uint8_t>(realm.realm_id.size()));
    AppendBytes(out, AsBytes(realm.realm_id));
    AppendBytes(out, realm.identity_key);
    AppendBytes(out, realm.public_share);
    AppendBytes(out, realm.second_public_share);
  }
  AppendBytes(out, wrapped_hash);
  AppendBytes(out, commit_hash);
  return out;
}

absl::Status CheckMatchesRealmSet(const Descriptor& descriptor,
                                  const RealmSet& set) {
  auto refuse = [](absl::string_view what) {
    return absl::FailedPreconditionError(
        absl::StrCat("the registration names another realm set than the "
                     "pinned one (",
                     what, "); recover with the set it was made with"));
  };
  if (descriptor.t != set.t() ||
      descriptor.realms.size() != static_cast<size_t>(set.n())) {
    return refuse(absl::StrCat(descriptor.t, "-of-", descriptor.realms.size(),
                               " instead of ", set.t(), "-of-", set.n()));
  }
  if (descriptor.advertised_limit != set.limits().advertised) {
    return refuse(absl::StrCat("attempt limit ", descriptor.advertised_limit,
                               " instead of ", set.limits().advertised));
  }
  for (size_t i = 0; i < descriptor.realms.size(); ++i) {
    const DescriptorRealm& got = descriptor.realms[i];
    const RealmConfig& pinned = set.realms()[i];
    if (got.realm_id != pinned.id || got.identity_key != pinned.identity_key) {
      return refuse(absl::StrCat("position ", i + 1, ": realm '", got.realm_id,
                                 "' where '", pinned.id,
                                 "' with its pinned key is expected"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckShare(const Descriptor& descriptor, size_t position,
                        ShareKind kind, const SecretBytes& share) {
  if (position >= descriptor.realms.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no realm at position ", position, " of the descriptor"));
  }
  const DescriptorRealm& realm = descriptor.realms[position];
  const bool key = kind == ShareKind::kKey;
  auto public_share = ristretto255::ScalarMultBase(share);
  if (!public_share.ok() ||
      *public_share != (key ? realm.public_share : realm.second_public_share)) {
    return absl::FailedPreconditionError(
        absl::StrCat("realm '", realm.realm_id, "': its ",
                     key ? "key share" : "second-secret share",
                     " does not match the descriptor's commitment"));
  }
  return absl::OkStatus();
}

std::array<uint8_t, 32> Descriptor::Commitment() const {
  const std::vector<uint8_t> bytes = Serialize();
  std::array<uint8_t, 32> out;
  crypto_hash_sha256(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace bkv::threshold
