#include "crypto/realm_set.h"

#include <algorithm>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"

namespace bkv::threshold {
absl::Status CheckRealmId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRealmIdSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "realm id must be 1 to ", kMaxRealmIdSize, " bytes, got ", id.size()));
  }
  if (!std::all_of(id.begin(), id.end(),
                   [](char c) { return c > 0x20 && c < 0x7f; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "realm id '", absl::CEscape(absl::string_view(id.data(), id.size())),
        "' must be printable ASCII without spaces"));
  }
  // Ids name token files (--token-dir) and audiences: no path in them.
  if (id.front() == '.' || id.find_first_of("/\\") != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "realm id '", absl::CEscape(absl::string_view(id.data(), id.size())),
        "' must not start with '.' or contain '/' or '\\' (it names a file)"));
  }
  return absl::OkStatus();
}

namespace {

absl::Status CheckRealms(std::span<const RealmConfig> realms) {
  std::set<std::string_view> ids;
  std::set<ristretto255::Element> keys;
  for (const RealmConfig& r : realms) {
    BKV_RETURN_IF_ERROR(CheckRealmId(r.id));
    if (!ids.insert(r.id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("realm id '", r.id, "' appears twice in the realm set"));
    }
    if (r.endpoint.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("realm '", r.id, "' has no endpoint"));
    }
    auto key = ristretto255::DeserializeElement(
        r.identity_key, absl::StrCat("identity key of realm '", r.id, "'"));
    if (!key.ok()) return key.status();
    if (!keys.insert(r.identity_key).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "realm '", r.id, "' has the identity key of another realm: each ",
          "realm must be an independent deployment with its own key"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckThresholdRule(int n, int t) {
  if (n < 1 || n > kMaxRealms) {
    return absl::InvalidArgumentError(
        absl::StrCat("a realm set has 1 to ", kMaxRealms, " realms, got ", n));
  }
  if (n == 1) {
    if (t == 1) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat("one realm needs threshold 1, got ", t));
  }
  if (t < 2 || n != 2 * t - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threshold ", t, " of ", n, " realms is refused: need n = 2t - 1 ",
        "(a majority threshold with no spare realm, so a registration cut ",
        "off between commits still leaves one version at t realms); ",
        n % 2 == 1 ? absl::StrCat("for ", n, " realms use t = ", (n + 1) / 2)
                   : absl::StrCat("use ", n - 1, " or ", n + 1, " realms")));
  }
  return absl::OkStatus();
}

absl::StatusOr<RealmSet> RealmSet::Create(std::vector<RealmConfig> realms,
                                          int t, uint32_t attempt_limit) {
  const int n = static_cast<int>(std::min<size_t>(realms.size(), 1000));
  BKV_RETURN_IF_ERROR(CheckThresholdRule(n, t));
  BKV_RETURN_IF_ERROR(CheckRealms(realms));
  BKV_ASSIGN_OR_RETURN(AttemptLimits limits,
                       ComputeAttemptLimits(attempt_limit, n, t));
  return RealmSet(std::move(realms), t, limits);
}

absl::StatusOr<uint8_t> RealmSet::IndexOf(std::string_view realm_id) const {
  for (size_t i = 0; i < realms_.size(); ++i) {
    if (realms_[i].id == realm_id) return static_cast<uint8_t>(i + 1);
  }
  return absl::NotFoundError(absl::StrCat(
      "realm '",
      absl::CEscape(absl::string_view(realm_id.data(), realm_id.size())),
      "' is not in the realm set"));
}

}  // namespace bkv::threshold
