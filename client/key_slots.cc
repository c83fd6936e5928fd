#include "client/key_slots.h"

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/backup_set.h"
#include "client/client_state.h"
#include "client/repo/repository.h"
#include "client/sigv4.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

std::string GenerationFile(const SetId& id) {
  return "keyring-" + HexEncode(id) + ".gen";
}

// Per store URL (the client's state files about what it saw there).
std::string StorePrefix(const BlobStore& store) {
  const std::string url = store.url();
  return "keyring-at-" +
         Sha256Hex({reinterpret_cast<const uint8_t*>(url.data()), url.size()})
             .substr(0, 32);
}

// The newest generation seen at a store URL: a keyring that reads NotFound
// where one was seen is gone, not a legacy set (review #3).
std::string StoreFile(const BlobStore& store) {
  return StorePrefix(store) + ".gen";
}

// The set id and master key fingerprint verified at a store URL (review #2).
std::string PinFile(const BlobStore& store) {
  return StorePrefix(store) + ".pin";
}

// Store-supplied text shown on a terminal: control characters (escape
// sequences) become '?' (review #5).
std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    const auto u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u == 0x7f) ch = '?';
  }
  return out;
}

std::string Describe(const KeySlot& s) {
  switch (s.type) {
    case SlotType::kRecoveryKey:
      return "64-digit recovery key";
    case SlotType::kVault: {
      auto p = DecodeVaultParams(s.params);
      if (!p.ok()) return "vault (unreadable parameters)";
      return absl::StrCat("vault ", HexEncode(p->vault_key).substr(0, 16),
                          "…, account ", Printable(p->account));
    }
    case SlotType::kPasskey: {
      auto p = DecodePasskeyParams(s.params);
      if (!p.ok()) return "passkey (unreadable parameters)";
      return absl::StrCat("passkey, rp ", Printable(p->rp_id), ", credential ",
                          HexEncode(p->credential_id).substr(0, 16), "…");
    }
  }
  return "unknown";
}

// Whether slot `s` is the one `secret` is for (type and identity; the
// secret itself is tried by Keyring::Open).
bool Matches(const KeySlot& s, const SlotSecret& secret) {
  if (s.type != secret.type) return false;
  if (s.type == SlotType::kVault) {
    auto p = DecodeVaultParams(s.params);
    return p.ok() && p->vault_key == secret.vault.vault_key &&
           p->account == secret.vault.account;
  }
  if (s.type == SlotType::kPasskey) {
    auto p = DecodePasskeyParams(s.params);
    return p.ok() && p->credential_id == secret.credential_id;
  }
  return true;
}

absl::Status NoSlot(const Keyring& ring, const SlotSecret& secret) {
  std::vector<std::string> kinds;
  for (const KeySlot& s : ring.slots()) kinds.push_back(Describe(s));
  return SlotStatus(
      SlotError::kNoSlot,
      absl::NotFoundError(absl::StrCat(
          "this set has no slot for this ",
          std::string(SlotTypeName(secret.type)),
          secret.type == SlotType::kPasskey ? " (another passkey)" : "",
          "; its slots: ", absl::StrJoin(kinds, "; "))));
}

constexpr char kWriteUrl[] = "type.bkv/keyring-write";

absl::Status MarkWrite(absl::Status s, KeyringWrite w) {
  s.SetPayload(kWriteUrl,
               absl::Cord(w == KeyringWrite::kWritten ? "written" : "maybe"));
  return s;
}

absl::Status WrongSalt() {
  return SlotStatus(SlotError::kWrongSecret,
                    absl::PermissionDeniedError(
                        "the passkey's PRF output was evaluated on another "
                        "salt than its slot's; evaluate the slot's salt"));
}

}  // namespace

SlotSecret SlotSecret::RecoveryKey(const BackupKey& key) {
  SlotSecret s;
  s.type = SlotType::kRecoveryKey;
  s.secret = key.secret().Clone();
  return s;
}

SlotSecret SlotSecret::Vault(const SecretBytes& released, VaultParams params) {
  SlotSecret s;
  s.type = SlotType::kVault;
  s.secret = released.Clone();
  s.vault = std::move(params);
  return s;
}

SlotSecret SlotSecret::Passkey(const SecretBytes& prf_output,
                               std::vector<uint8_t> credential_id) {
  SlotSecret s;
  s.type = SlotType::kPasskey;
  s.secret = prf_output.Clone();
  s.credential_id = std::move(credential_id);
  return s;
}

KeyringWrite KeyringWriteOf(const absl::Status& status) {
  auto p = status.GetPayload(kWriteUrl);
  if (!p) return KeyringWrite::kNotWritten;
  return *p == "written" ? KeyringWrite::kWritten : KeyringWrite::kMaybeWritten;
}

std::vector<uint8_t> ParamsFor(const SlotSecret& s) {
  if (s.type == SlotType::kVault) return EncodeVaultParams(s.vault);
  return {};
}

absl::StatusOr<bool> KeySlots::HasKeyring() {
  auto st = store_.Stat(Keyring::kObjectName);
  if (absl::IsNotFound(st.status())) return false;
  if (!st.ok()) return st.status();
  return true;
}

namespace {
constexpr uint64_t kMaxGenerationJump = uint64_t{1} << 32;
}  // namespace

absl::StatusOr<std::optional<Keyring>> KeySlots::Read() {
  auto bytes = GetBytes(store_, Keyring::kObjectName, 1 << 20);
  if (absl::IsNotFound(bytes.status())) {
    BKV_RETURN_IF_ERROR(KeyringGone());
    return std::optional<Keyring>();
  }
  if (!bytes.ok()) return bytes.status();
  auto ring = Keyring::Decode(*bytes);
  if (!ring.ok()) return ring.status();
  read_bytes_ = *std::move(bytes);
  const uint64_t seen =
      RecallCounter(options_.state_dir, GenerationFile(ring->set_id()));
  if (seen > ring->generation()) {
    return SlotStatus(
        SlotError::kRolledBack,
        absl::DataLossError(
            absl::StrCat("the store rolled back the keyring: it is generation ",
                         ring->generation(),
                         " but this client already saw generation ", seen,
                         " (a removed slot may be back); restore the keyring "
                         "from a copy you trust, or run bkv rekey")));
  }
  // A jump no run of slot changes could make: a forged generation that
  // would lock out every genuine later keyring (review #2).
  if (seen != 0 && ring->generation() - seen > kMaxGenerationJump) {
    return SlotStatus(
        SlotError::kRolledBack,
        absl::DataLossError(absl::StrCat(
            "the store's keyring claims generation ", ring->generation(),
            ", implausibly far beyond the ", seen,
            " this client saw: refused as forged; restore the keyring from "
            "a copy you trust, or run bkv rekey")));
  }
  return std::optional<Keyring>(*std::move(ring));
}

absl::StatusOr<KeySlots::Opened> KeySlots::Open(const SlotSecret& secret) {
  auto ring = Read();
  if (!ring.ok()) return ring.status();
  if (!ring->has_value()) {
    if (secret.type == SlotType::kPasskey) {
      return SlotStatus(
          SlotError::kNoSlot,
          absl::NotFoundError("this set has no keyring, so no passkey "
                              "slot: it opens with its 64-digit key or its "
                              "vault password (bkv slot add --passkey)"));
    }
    auto key = BackupKey::FromBytes(secret.secret);
    if (!key.ok()) return key.status();
    return Opened{std::nullopt, *std::move(key), {}};
  }
  absl::Status last = NoSlot(**ring, secret);
  for (const KeySlot& s : (*ring)->slots()) {
    if (!Matches(s, secret)) continue;
    if (secret.salt && DecodePasskeyParams(s.params)->salt != *secret.salt) {
      last = WrongSalt();
      continue;
    }
    auto master = (*ring)->Open(s.id, secret.secret);
    if (master.ok()) {
      auto key = BackupKey::FromBytes(*master);
      if (!key.ok()) return key.status();
      BKV_RETURN_IF_ERROR(Remember(**ring, *master));
      return Opened{*std::move(ring), *std::move(key), s.id};
    }
    last = master.status();
    if (SlotErrorOf(last) == SlotError::kTampered) return last;
  }
  if (secret.type == SlotType::kVault &&
      SlotErrorOf(last) == SlotError::kWrongSecret) {
    // Released after a counted login: not a typo, a changed keyring or a
    // vault record registered anew (review #9).
    return SlotStatus(
        SlotError::kTampered,
        absl::DataLossError(
            "the vault released this account's secret but the set's vault "
            "slot does not open with it: the keyring changed, or the account "
            "was registered anew; open the set with another slot and check "
            "bkv slot list"));
  }
  return last;
}

absl::Status KeySlots::KeyringGone() {
  const uint64_t seen = RecallCounter(options_.state_dir, StoreFile(store_));
  if (seen == 0) return absl::OkStatus();
  return SlotStatus(
      SlotError::kRolledBack,
      absl::DataLossError(absl::StrCat(
          store_.url(),
          " has no keyring, but this client saw its keyring at "
          "generation ",
          seen,
          ": it was deleted or is hidden; nothing was "
          "written. Restore the keyring object from a copy you trust (delete ",
          options_.state_dir, "/", StorePrefix(store_),
          ".{gen,pin} only if this URL now holds another set)")));
}

absl::Status KeySlots::ProveLegacyKey(const BackupKey& key) {
  BKV_ASSIGN_OR_RETURN(const bool v2, Repository::Exists(store_));
  absl::Status opened;
  if (v2) {
    opened = Repository::Open(store_, key, {}).status();
  } else {
    auto records = BackupSet(store_, key).List();
    opened = records.status();
    if (records.ok() && records->empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          store_.url(),
          " holds no backup, so nothing proves which key is "
          "its master key: back up into it first (a first keyring is "
          "written only for a set whose objects open with the key)"));
    }
  }
  if (!absl::IsPermissionDenied(opened)) return opened;
  return absl::PermissionDeniedError(
      absl::StrCat("this key does not open the backups in ", store_.url(), " (",
                   opened.message(),
                   "): it cannot become the set's master key; nothing "
                   "was written"));
}

absl::Status KeySlots::ExpectSlot(const SlotSecret& who) {
  BKV_ASSIGN_OR_RETURN(std::optional<Keyring> ring, Read());
  if (!ring) return absl::OkStatus();
  for (const KeySlot& s : ring->slots()) {
    if (Matches(s, who)) return absl::OkStatus();
  }
  return NoSlot(*ring, who);
}

absl::StatusOr<BackupKey> KeySlots::Unlock(const SlotSecret& secret) {
  auto opened = Open(secret);
  if (!opened.ok()) return opened.status();
  return std::move(opened->master);
}

absl::StatusOr<BackupKey> KeySlots::MasterFor(const BackupKey& key) {
  BKV_ASSIGN_OR_RETURN(std::optional<Keyring> ring, Read());
  if (!ring) return key.Clone();
  if (ring->SealedBy(key.secret())) {
    BKV_RETURN_IF_ERROR(Remember(*ring, key.secret()));
    return key.Clone();
  }
  for (const KeySlot& s : ring->slots()) {
    // A passkey's secret is a PRF output, never a key the app holds.
    if (s.type == SlotType::kPasskey) continue;
    auto master = ring->Open(s.id, key.secret());
    if (SlotErrorOf(master.status()) == SlotError::kWrongSecret) continue;
    if (!master.ok()) return master.status();
    BKV_RETURN_IF_ERROR(Remember(*ring, *master));
    return BackupKey::FromBytes(*master);
  }
  return SlotStatus(
      SlotError::kWrongSecret,
      absl::PermissionDeniedError(absl::StrCat(
          "wrong backup key for ", store_.url(),
          ": it is neither the set's master key nor the secret of one of its "
          "recovery-key or vault slots (a passkey opens through its slot: "
          "bkv_slots_unlock)")));
}

absl::StatusOr<std::pair<BackupKey, KeySlot>> KeySlots::UnlockSlot(
    const SlotSecret& secret) {
  BKV_ASSIGN_OR_RETURN(Opened o, Open(secret));
  KeySlot slot;
  if (o.ring) {
    slot = *o.ring->Find(o.slot);
  } else {
    slot.type = secret.type;
    slot.params = ParamsFor(secret);
  }
  return std::make_pair(std::move(o.master), std::move(slot));
}

absl::Status KeySlots::CreateKeyring(const BackupKey& master,
                                     const KeySlot& like,
                                     const SlotSecret& secret, bool new_set) {
  Keyring ring = Keyring::Create();
  BKV_RETURN_IF_ERROR(
      ring.Add(master.secret(), like.type, like.params, secret.secret)
          .status());
  return Write(ring, master, new_set ? WriteMode::kNewSet : WriteMode::kFirst);
}

absl::StatusOr<std::vector<SlotInfo>> KeySlots::List() {
  auto ring = Read();
  if (!ring.ok()) return ring.status();
  std::vector<SlotInfo> out;
  if (!ring->has_value()) return out;
  for (const KeySlot& s : (*ring)->slots()) {
    out.push_back({s.id, s.type, Describe(s)});
  }
  return out;
}

absl::StatusOr<std::vector<PasskeyRequest>> KeySlots::PasskeyRequests() {
  auto ring = Read();
  if (!ring.ok()) return ring.status();
  std::vector<PasskeyRequest> out;
  if (!ring->has_value()) return out;
  for (const KeySlot& s : (*ring)->slots()) {
    if (s.type != SlotType::kPasskey) continue;
    auto p = DecodePasskeyParams(s.params);
    if (p.ok()) out.push_back({s.id, *std::move(p)});
  }
  return out;
}

namespace {
// A slot change that lost a race to another client's (Aborted) commutes
// with it: it is applied again on the fresh keyring, with the secrets in
// hand, up to this many times in all (review finding 7).
constexpr int kChangeAttempts = 3;
}  // namespace

absl::StatusOr<SlotId> KeySlots::Add(const SlotSecret& opened_with,
                                     const SlotSecret& added,
                                     std::vector<uint8_t> params) {
  absl::StatusOr<SlotId> id = absl::AbortedError("");
  for (int i = 0; i < kChangeAttempts && absl::IsAborted(id.status()); ++i) {
    id = AddOnce(opened_with, added, params);
  }
  return id;
}

absl::StatusOr<bool> KeySlots::Remove(const SlotSecret& opened_with,
                                      const std::string& id_prefix) {
  absl::StatusOr<bool> removed = absl::AbortedError("");
  for (int i = 0; i < kChangeAttempts && absl::IsAborted(removed.status());
       ++i) {
    removed = RemoveOnce(opened_with, id_prefix);
  }
  return removed;
}

absl::StatusOr<SlotId> KeySlots::AddOnce(const SlotSecret& opened_with,
                                         const SlotSecret& added,
                                         std::vector<uint8_t> params) {
  BKV_ASSIGN_OR_RETURN(Opened o, Open(opened_with));
  const bool first = !o.ring;
  if (first) {
    BKV_RETURN_IF_ERROR(ProveLegacyKey(o.master));
    o.ring = Keyring::Create();
    BKV_ASSIGN_OR_RETURN(
        o.slot, o.ring->Add(o.master.secret(), opened_with.type,
                            ParamsFor(opened_with), opened_with.secret));
  }
  BKV_ASSIGN_OR_RETURN(SlotId id, o.ring->Add(o.master.secret(), added.type,
                                              std::move(params), added.secret));
  BKV_RETURN_IF_ERROR(
      Write(*o.ring, o.master, first ? WriteMode::kFirst : WriteMode::kUpdate));
  return id;
}

absl::StatusOr<bool> KeySlots::RemoveOnce(const SlotSecret& opened_with,
                                          const std::string& id_prefix) {
  BKV_ASSIGN_OR_RETURN(Opened o, Open(opened_with));
  if (!o.ring) {
    return absl::NotFoundError(
        "this set has no keyring: it has a single way in and no slot to "
        "remove");
  }
  const KeySlot* found = nullptr;
  for (const KeySlot& s : o.ring->slots()) {
    if (id_prefix.empty() || !absl::StartsWith(SlotIdHex(s.id), id_prefix)) {
      continue;
    }
    if (found != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("slot id prefix ", id_prefix,
                       " names several slots: give more "
                       "digits (bkv slot list)"));
    }
    found = &s;
  }
  if (found == nullptr) {
    return absl::NotFoundError(absl::StrCat("no slot id starts with '",
                                            id_prefix, "' (bkv slot list)"));
  }
  const SlotId id = found->id;
  const bool is_master = o.ring->Unwraps(id, o.master.secret());
  BKV_RETURN_IF_ERROR(o.ring->Remove(id));
  BKV_RETURN_IF_ERROR(Write(*o.ring, o.master));
  return is_master;
}

absl::Status KeySlots::RotatePasskeySalt(
    const SlotSecret& old_output,
    const std::array<uint8_t, PasskeyParams::kSaltSize>& new_salt,
    const SecretBytes& new_output) {
  BKV_ASSIGN_OR_RETURN(Opened o, Open(old_output));
  if (!o.ring) return absl::NotFoundError("this set has no passkey slot");
  BKV_ASSIGN_OR_RETURN(PasskeyParams p,
                       DecodePasskeyParams(o.ring->Find(o.slot)->params));
  p.salt = new_salt;
  BKV_RETURN_IF_ERROR(o.ring->Rewrap(o.slot, o.master.secret(),
                                     EncodePasskeyParams(p), new_output));
  return Write(*o.ring, o.master);
}

absl::Status KeySlots::Write(Keyring& ring, const BackupKey& master,
                             WriteMode mode) {
  const uint64_t read_generation = ring.generation();
  auto bytes = ring.Encode(master.secret());
  if (!bytes.ok()) return bytes.status();
  if (mode != WriteMode::kUpdate) {
    // Stores have no create-only put: look once more right before it, so
    // only a keyring written in this instant can be overwritten (review #3).
    BKV_ASSIGN_OR_RETURN(const bool exists, HasKeyring());
    if (exists) {
      return absl::FailedPreconditionError(
          absl::StrCat(store_.url(),
                       " already has a keyring (written meanwhile?): "
                       "nothing was written; run the command again"));
    }
  } else {
    BKV_RETURN_IF_ERROR(
        StillAsRead(ring.set_id(), read_generation, master.secret()));
  }
  // Before the put, so that "nothing was written" is true (review finding 5).
  if (mode != WriteMode::kNewSet) {
    BKV_RETURN_IF_ERROR(CheckPin(ring, master.secret(), /*record=*/false));
  }
  absl::Status put = PutBytes(store_, Keyring::kObjectName, *bytes);
  if (!put.ok()) {
    // A put stopped by an interrupt never becomes visible
    // (CancellableBlobStore; stores keep the code, not always the payload),
    // and a read through the same stopped store would fail.
    const KeyringWrite w = absl::IsCancelled(put)
                               ? KeyringWrite::kNotWritten
                               : AfterFailedPut(*bytes, mode);
    if (w == KeyringWrite::kNotWritten) return put;
    if (w == KeyringWrite::kMaybeWritten) return MarkWrite(put, w);
  }
  absl::Status after = mode == WriteMode::kNewSet ? Repin(ring, master.secret())
                                                  : absl::OkStatus();
  if (after.ok()) after = Remember(ring, master.secret());
  return after.ok() ? after : MarkWrite(after, KeyringWrite::kWritten);
}

// A put can fail after the store applied it (a WebDAV MOVE or S3 PUT whose
// answer was lost): only the keyring read back tells.
KeyringWrite KeySlots::AfterFailedPut(const std::vector<uint8_t>& written,
                                      WriteMode mode) {
  auto now = GetBytes(store_, Keyring::kObjectName, 1 << 20);
  if (now.ok() && *now == written) return KeyringWrite::kWritten;
  const bool before = mode == WriteMode::kUpdate
                          ? now.ok() && *now == read_bytes_
                          : absl::IsNotFound(now.status());
  return before ? KeyringWrite::kNotWritten : KeyringWrite::kMaybeWritten;
}

// Stores have no conditional put: the keyring is read once more right
// before it, so a slot change another client made meanwhile is refused
// rather than silently undone (a removed slot back; review #4). Only a
// change in the instant between this read and the put can still be lost.
absl::Status KeySlots::StillAsRead(const SetId& set_id, uint64_t generation,
                                   const SecretBytes& master) {
  auto bytes = GetBytes(store_, Keyring::kObjectName, 1 << 20);
  if (bytes.ok() && *bytes == read_bytes_) return absl::OkStatus();
  if (absl::IsNotFound(bytes.status())) {
    return absl::DataLossError(absl::StrCat(
        store_.url(),
        "'s keyring was deleted while this command ran: nothing was "
        "written; restore the keyring object from a copy you trust"));
  }
  if (!bytes.ok()) return bytes.status();
  auto now = Keyring::Decode(*bytes);
  // Only a keyring sealed by this set's master key is another client's
  // change; anything else is forged (review finding 10).
  if (now.ok() && now->set_id() == set_id && now->generation() > generation &&
      now->SealedBy(master)) {
    return absl::AbortedError(absl::StrCat(
        store_.url(), "'s keyring changed while this command ran (generation ",
        generation, " became ", now->generation(),
        ": another client changed a slot); nothing was written: check bkv "
        "slot list and run the command again"));
  }
  return SlotStatus(
      SlotError::kTampered,
      absl::DataLossError(absl::StrCat(
          store_.url(),
          "'s keyring changed while this command ran, and not into a newer "
          "generation sealed by this set's master key (it is generation ",
          now.ok() ? now->generation() : 0, ", this command read ", generation,
          "): two keyrings claim one generation, a forged or forked "
          "keyring; nothing was written; check bkv slot list")));
}

// A store URL stays pinned to the set and master key this client verified
// there: an old master key's holder who forges a keyring for a new set id
// under it, or copies the old store over the URL a rekey wrote, is refused
// (review #2). A new device, without the pin, cannot tell.
namespace {
std::string PinLine(const Keyring& ring, const SecretBytes& master) {
  return absl::StrCat(HexEncode(ring.set_id()), " ",
                      HexEncode(MasterFingerprint(ring.set_id(), master)));
}
}  // namespace

// This client chose the set id and master key of a set it wrote into a
// store it found empty (rekey): an earlier pin for the URL is stale.
absl::Status KeySlots::Repin(const Keyring& ring, const SecretBytes& master) {
  BKV_RETURN_IF_ERROR(
      RememberLine(options_.state_dir, PinFile(store_), PinLine(ring, master)));
  return RememberCounter(options_.state_dir, StoreFile(store_),
                         ring.generation());
}

absl::Status KeySlots::CheckPin(const Keyring& ring, const SecretBytes& master,
                                bool record) {
  const std::string file = PinFile(store_);
  const std::string pin = PinLine(ring, master);
  const std::string seen = RecallLine(options_.state_dir, file);
  if (seen.empty()) {
    return record ? RememberLine(options_.state_dir, file, pin)
                  : absl::OkStatus();
  }
  if (seen == pin) return absl::OkStatus();
  return SlotStatus(
      SlotError::kRolledBack,
      absl::DataLossError(absl::StrCat(
          store_.url(), " now holds set ", HexEncode(ring.set_id()),
          " under another master key than the set ", seen.substr(0, 32),
          " this client verified there: an old master key pushed back, or "
          "another set copied over it; nothing was written. Restore the "
          "store from a copy you trust (delete ",
          options_.state_dir, "/", StorePrefix(store_),
          ".{gen,pin} only if you put another set at this URL yourself)")));
}

absl::Status KeySlots::Remember(const Keyring& ring,
                                const SecretBytes& master) {
  BKV_RETURN_IF_ERROR(CheckPin(ring, master));
  BKV_RETURN_IF_ERROR(
      RememberMax(options_.state_dir, StoreFile(store_), ring.generation()));
  return RememberMax(options_.state_dir, GenerationFile(ring.set_id()),
                     ring.generation());
}

}  // namespace bkv
