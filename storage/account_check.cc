#include "storage/account_check.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace bkv::storage {

absl::StatusOr<AccountState> CheckAccount(const AccountKey& key,
                                          const RawAccount& raw) {
  if (!raw.watermark.has_value()) {
    if (raw.record.has_value()) {
      return TamperError(key, "record present without its version watermark");
    }
    return AccountState{};
  }
  auto wm = ParseWatermark(AsSpan(*raw.watermark));
  if (!wm.ok()) return TamperError(key, wm.status().message());
  if (wm->state == Watermark::State::kDeleted) {
    if (raw.record.has_value()) {
      return TamperError(key, absl::StrCat("record present although it was "
                                           "deleted at version ",
                                           wm->version));
    }
    return AccountState{false, 0, wm->version};
  }
  if (!raw.record.has_value()) {
    return TamperError(key, absl::StrCat("record missing; its watermark says "
                                         "version ",
                                         wm->version, " is live"));
  }
  auto version = PeekRecordVersion(AsSpan(*raw.record));
  if (!version.ok()) return TamperError(key, version.status().message());
  if (*version < wm->version) {
    return TamperError(
        key, absl::StrCat("version ", *version,
                          " is older than the account's "
                          "high-water mark ",
                          wm->version, ": an old copy was written back"));
  }
  if (*version > wm->version) {
    return TamperError(
        key, absl::StrCat("version ", *version, " is ahead of its watermark ",
                          wm->version));
  }
  return AccountState{true, *version, *version};
}

bool VisitAccount(const Sealer& sealer, std::string_view id,
                  const RawAccount& raw, RecordStore::Visitor visit) {
  AccountKey key{};
  std::copy_n(id.begin(), std::min(id.size(), key.size()), key.begin());
  if (id.size() != key.size()) {
    return visit(key, TamperError(key, "a key of unexpected length"));
  }
  auto state = CheckAccount(key, raw);
  if (!state.ok()) return visit(key, state.status());
  if (!state->live) return true;
  return visit(key, OpenRecord(sealer, key, AsSpan(*raw.record)));
}

}  // namespace bkv::storage
