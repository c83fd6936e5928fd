#include "client/realm_set_file.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/vault_client.h"
#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv::client {
namespace {

constexpr absl::string_view kHeader = "bkv-realm-set v1";

absl::Status LineError(int line, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("realm set, line ", line, ": ", what));
}

struct Parsed {
  std::vector<threshold::RealmConfig> realms;
  int t = 0;
  uint32_t limit = 0;
  bool header = false;
  RealmSetSlot slot;
  std::vector<RetiredRealm> retired;
};

absl::Status ParseLine(int no, absl::string_view line, Parsed& p) {
  if (!p.header) {
    if (line != kHeader) {
      return LineError(no, absl::StrCat("expected \"", kHeader, "\""));
    }
    p.header = true;
    return absl::OkStatus();
  }
  std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
  if ((f[0] == "t" || f[0] == "limit") && f.size() == 2) {
    uint32_t v = 0;
    if (!absl::SimpleAtoi(f[1], &v) || v == 0 || v > 1'000'000) {
      return LineError(no, absl::StrCat(f[0], " must be a positive number"));
    }
    if (f[0] == "t") {
      if (p.t != 0) return LineError(no, "t is given twice");
      p.t = static_cast<int>(v);
    } else {
      if (p.limit != 0) return LineError(no, "limit is given twice");
      p.limit = v;
    }
    return absl::OkStatus();
  }
  if (f[0] == "slot" && f.size() == 2) {
    auto bytes = HexDecode(std::string(f[1]));
    if (p.slot || !bytes.ok() || bytes->size() != 32) {
      return LineError(no, "slot must be given once, as 64 hex digits");
    }
    p.slot.emplace();
    std::copy(bytes->begin(), bytes->end(), p.slot->begin());
    return absl::OkStatus();
  }
  const bool realm = f[0] == "realm" && f.size() == 4;
  if (realm || (f[0] == "retired" && f.size() == 3)) {
    auto key = ParseServerPublicKey(std::string(f.back()));
    if (!key.ok()) {
      return LineError(no,
                       "the identity key must be 64 hex digits (bkv-vault "
                       "hsm status prints the realm's public key)");
    }
    if (realm) {
      p.realms.push_back({std::string(f[1]), std::string(f[2]), *key});
      return absl::OkStatus();
    }
    if (absl::Status s = threshold::CheckRealmId(std::string(f[1])); !s.ok()) {
      return LineError(no, s.message());
    }
    p.retired.push_back({std::string(f[1]), *key});
    return absl::OkStatus();
  }
  return LineError(no,
                   "expected \"t N\", \"limit L\", \"realm ID ENDPOINT "
                   "KEY\", \"slot HEX\" or \"retired ID KEY\" (fields "
                   "separated by one space)");
}

}  // namespace

absl::Status CheckRetired(const threshold::RealmSet& set,
                          std::span<const RetiredRealm> retired) {
  for (size_t k = 0; k < retired.size(); ++k) {
    const RetiredRealm& r = retired[k];
    for (const auto& m : set.realms()) {
      if (m.id == r.id || m.identity_key == r.identity_key) {
        return absl::InvalidArgumentError(absl::StrCat(
            "realm set: ", m.id, " is both a realm of the set and retired",
            m.id == r.id ? "" : absl::StrCat(" (as ", r.id, ", same key)"),
            ": a retired realm is gone for good (its HSM token destroyed); a "
            "realm brought up again is a new realm with a new id and key"));
      }
    }
    for (size_t e = 0; e < k; ++e) {
      if (retired[e].id == r.id) {
        return absl::InvalidArgumentError(
            absl::StrCat("realm set: ", r.id, " is retired twice"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<threshold::RealmSet> ParseRealmSet(
    absl::string_view text, RealmSetSlot* slot,
    std::vector<RetiredRealm>* retired) {
  Parsed p;
  int no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++no;
    if (no > 1000) return LineError(no, "too many lines");
    line = absl::StripSuffix(line, "\r");
    if (line.empty() || line.front() == '#') continue;
    BKV_RETURN_IF_ERROR(ParseLine(no, line, p));
  }
  if (!p.header) return LineError(no, "empty file");
  if (p.t == 0) return absl::InvalidArgumentError("realm set: no \"t\" line");
  if (p.limit == 0) {
    return absl::InvalidArgumentError("realm set: no \"limit\" line");
  }
  BKV_ASSIGN_OR_RETURN(
      threshold::RealmSet set,
      threshold::RealmSet::Create(std::move(p.realms), p.t, p.limit));
  BKV_RETURN_IF_ERROR(CheckRetired(set, p.retired));
  if (slot != nullptr) *slot = p.slot;
  if (retired != nullptr) *retired = std::move(p.retired);
  return set;
}

absl::StatusOr<threshold::RealmSet> LoadRealmSetFile(
    const std::string& path, RealmSetSlot* slot,
    std::vector<RetiredRealm>* retired) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read the realm set file ", path));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().size() > 64 * 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("the realm set file ", path, " is larger than 64 KiB"));
  }
  auto set = ParseRealmSet(text.str(), slot, retired);
  if (!set.ok()) {
    return absl::Status(set.status().code(),
                        absl::StrCat(path, ": ", set.status().message()));
  }
  return set;
}

std::string FormatRealmSet(const threshold::RealmSet& set) {
  std::string out = absl::StrCat(kHeader, "\nt ", set.t(), "\nlimit ",
                                 set.limits().advertised, "\n");
  for (const auto& r : set.realms()) {
    absl::StrAppend(&out, "realm ", r.id, " ", r.endpoint, " ",
                    HexEncode(r.identity_key), "\n");
  }
  return out;
}

std::array<uint8_t, 32> RealmSetDigest(const threshold::RealmSet& set) {
  std::string text = absl::StrCat("bkv-realm-set-slot/v2\nt ", set.t(),
                                  "\nlimit ", set.limits().advertised, "\n");
  for (const auto& r : set.realms()) {
    absl::StrAppend(&text, r.id, " ", HexEncode(r.identity_key), "\n");
  }
  const Sha512Digest h =
      Sha512({{reinterpret_cast<const uint8_t*>(text.data()), text.size()}});
  std::array<uint8_t, 32> out{};
  std::copy_n(h.begin(), out.size(), out.begin());
  return out;
}

}  // namespace bkv::client
