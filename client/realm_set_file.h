#ifndef BKV_CLIENT_REALM_SET_FILE_H_
#define BKV_CLIENT_REALM_SET_FILE_H_

// The realm-set file an app ships (docs/threshold.md, "The realm-set file"):
//
//   bkv-realm-set v1
//   t 2
//   limit 10
//   realm <realm id> <gRPC endpoint> <identity key, 64 hex digits>
//   ... (n realm lines, in Shamir order: the first is index 1)
//   slot <64 hex digits>   (optional: the CLI's keyring slot label of the
//                           set this one replaced, docs/threshold.md)
//   retired <realm id> <identity key, 64 hex digits>
//                          (optional, any number: a realm of an earlier set
//                           whose operator destroyed its HSM token; not part
//                           of the set, docs/threshold.md "A realm that left
//                           for good")
//
// '#' comments and blank lines are ignored. Parsing is strict (each error
// names its line); the result goes through threshold::RealmSet::Create, the
// one realm-set rule.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crypto/realm_set.h"

namespace bkv::client {

using RealmSetSlot = std::optional<std::array<uint8_t, 32>>;

// A realm the file says is gone for good: its operator destroyed its HSM
// token, so its shares went with it. Named by id and key, like a member.
struct RetiredRealm {
  std::string id;
  ristretto255::Element identity_key{};
};

// `slot` (optional) receives the file's slot line, nullopt when it has none;
// `retired` (optional) its retired lines. They never change the set (nor
// RealmSetDigest, nor FormatRealmSet).
absl::StatusOr<threshold::RealmSet> ParseRealmSet(
    absl::string_view text, RealmSetSlot* slot = nullptr,
    std::vector<RetiredRealm>* retired = nullptr);
absl::StatusOr<threshold::RealmSet> LoadRealmSetFile(
    const std::string& path, RealmSetSlot* slot = nullptr,
    std::vector<RetiredRealm>* retired = nullptr);
// A retired realm is none of the set's realms (by id or key) and is named
// once: a live member listed as destroyed is an operator's mix-up.
absl::Status CheckRetired(const threshold::RealmSet& set,
                          std::span<const RetiredRealm> retired);
// The canonical text of a set (what ParseRealmSet reads back).
std::string FormatRealmSet(const threshold::RealmSet& set);
// A digest of what makes the set (t, L, the ordered ids and identity keys;
// not the endpoints): the CLI's keyring slot label, and what tells a
// recovery's set from another (ThresholdRecovery::realm_set).
std::array<uint8_t, 32> RealmSetDigest(const threshold::RealmSet& set);

}  // namespace bkv::client

#endif  // BKV_CLIENT_REALM_SET_FILE_H_
