#include "client/cli/slot_command.h"

#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/posix_file.h"
#include "crypto/hex.h"
#include "crypto/random.h"
#include "crypto/status_macros.h"

namespace bkv {
namespace {

// A keyring's "no slot" and "wrong secret" said in a passkey's terms.
absl::Status AsPasskeyError(absl::Status s) {
  auto kind = SlotErrorOf(s);
  if (kind == SlotError::kNoSlot) {
    return PasskeyStatus(PasskeyError::kOtherPasskey, std::move(s));
  }
  if (kind == SlotError::kWrongSecret) {
    return PasskeyStatus(PasskeyError::kWrongOutput, std::move(s));
  }
  return s;
}

std::string Json(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

absl::Status List(KeySlots& slots, const SlotCommandOptions& o) {
  BKV_ASSIGN_OR_RETURN(auto list, slots.List());
  if (list.empty() && !o.json) {
    std::fprintf(o.out,
                 "no keyring: this set opens with its one 64-digit key or "
                 "vault password (bkv slot add adds more ways in)\n");
    return absl::OkStatus();
  }
  std::string json = "{\"slots\":[";
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string id = SlotIdHex(list[i].id);
    absl::StrAppend(&json, i ? "," : "", "{\"id\":", Json(id),
                    ",\"type\":", Json(SlotTypeName(list[i].type)),
                    ",\"description\":", Json(list[i].description), "}");
    if (!o.json) {
      std::fprintf(o.out, "%s  %-12s  %s\n", id.c_str(),
                   std::string(SlotTypeName(list[i].type)).c_str(),
                   list[i].description.c_str());
    }
  }
  if (o.json) std::fprintf(o.out, "%s]}\n", json.c_str());
  // Nothing here is authenticated: a forged keyring can list anything.
  std::fprintf(o.err,
               "bkv: UNVERIFIED: this list is what the store serves; the "
               "keyring is verified only when a command opens the set\n");
  return absl::OkStatus();
}

// The new slot: its secret and undo, and its parameters.
struct NewSlotParts {
  NewSlotSecret made;
  std::vector<uint8_t> params;
};

// A new recovery key's file, written before the keyring put (the user must
// never hold a slot without its key) and removed if the put fails.
absl::StatusOr<NewSlotParts> NewRecoveryKey(const std::string& path) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "slot add --recovery-key needs --out FILE for the new 64-digit key");
  }
  BackupKey key = BackupKey::Generate();
  BKV_RETURN_IF_ERROR(WriteKeyFile(path, key));
  auto undo = [path]() -> absl::Status {
    if (::unlink(path.c_str()) == 0 || errno == ENOENT) {
      return absl::OkStatus();
    }
    return ErrnoStatus(errno, "remove the new key file " + path);
  };
  return NewSlotParts{{SlotSecret::RecoveryKey(key), undo}, {}};
}

// The new slot's secret and parameters, from its ceremony.
absl::StatusOr<NewSlotParts> NewSlot(const SlotCommandOptions& o,
                                     const NewSecretSource& new_vault_secret) {
  if (o.add_type == SlotType::kRecoveryKey) {
    return NewRecoveryKey(o.new_key_file);
  }
  if (o.add_type == SlotType::kVault) {
    BKV_ASSIGN_OR_RETURN(NewSlotSecret made, new_vault_secret());
    std::vector<uint8_t> params = ParamsFor(made.secret);
    return NewSlotParts{std::move(made), std::move(params)};
  }
  // A passkey made on the authenticator cannot be taken back from here;
  // without its slot it opens nothing.
  PasskeyParams p;
  p.rp_id = RpIdToEnrol(o.passkey);
  SystemRandom().Bytes(p.salt);
  BKV_ASSIGN_OR_RETURN(PasskeyPageResult r,
                       CreatePasskeyOnPage(p.salt, o.passkey));
  p.credential_id = r.credential_id;
  return NewSlotParts{
      {SlotSecret::Passkey(r.prf_output, std::move(r.credential_id)), {}},
      EncodePasskeyParams(p)};
}

// The keyring put failed: take back the new slot's side effects, and say
// so (or say what is left, when that fails too).
absl::Status Undone(const absl::Status& failed, const NewSlotSecret& made) {
  if (!made.undo) return failed;
  const absl::Status undo = made.undo();
  return absl::Status(
      failed.code(),
      absl::StrCat(failed.message(),
                   undo.ok() ? "; the new slot's secret was taken back "
                               "(nothing is left of it)"
                             : absl::StrCat("; taking back the new slot's "
                                            "secret failed too: ",
                                            undo.message())));
}

// What holds the new slot's secret, for a message that keeps it.
std::string KeptSecret(const SlotCommandOptions& o) {
  if (o.add_type == SlotType::kRecoveryKey) {
    return "the new key in " + o.new_key_file;
  }
  if (o.add_type == SlotType::kVault) return "the new vault record";
  return "the new passkey";
}

// A failed keyring put: the new secret is taken back only when the store
// surely does not hold the new slot (review finding 3).
absl::Status AddFailed(const absl::Status& failed, const NewSlotSecret& made,
                       const SlotCommandOptions& o) {
  switch (KeyringWriteOf(failed)) {
    case KeyringWrite::kNotWritten: {
      absl::Status undone = Undone(failed, made);
      // An interrupt's exit replaces the message: say what was cleaned up.
      if (absl::IsCancelled(failed) && made.undo) {
        std::fprintf(o.err, "bkv: %s\n", std::string(undone.message()).c_str());
      }
      return undone;
    }
    case KeyringWrite::kWritten:
      return absl::Status(failed.code(),
                          absl::StrCat(failed.message(),
                                       "; the keyring was written, so the "
                                       "new slot is in the set: keep ",
                                       KeptSecret(o)));
    case KeyringWrite::kMaybeWritten:
      break;
  }
  return absl::Status(
      failed.code(),
      absl::StrCat(failed.message(), "; the new slot may have been added, so ",
                   KeptSecret(o),
                   " is kept: check bkv slot list, then "
                   "remove the slot or the secret you do not keep"));
}

absl::Status Add(KeySlots& slots, const SlotCommandOptions& o,
                 const SecretSource& opened_with,
                 const NewSecretSource& new_vault_secret) {
  BKV_ASSIGN_OR_RETURN(SlotSecret opened, opened_with());
  // Opens before any ceremony: a wrong key asks for no passkey.
  BKV_ASSIGN_OR_RETURN(BackupKey master, slots.Unlock(opened));
  BKV_ASSIGN_OR_RETURN(const bool has_keyring, slots.HasKeyring());
  const bool migrating = !has_keyring;
  // Before any side effect: a legacy secret must open the set's objects.
  if (migrating) BKV_RETURN_IF_ERROR(slots.ProveLegacyKey(master));
  BKV_ASSIGN_OR_RETURN(NewSlotParts added, NewSlot(o, new_vault_secret));
  auto id = slots.Add(opened, added.made.secret, std::move(added.params));
  if (!id.ok()) return AddFailed(id.status(), added.made, o);
  if (o.json) {
    std::fprintf(o.out, "{\"added\":%s,\"type\":%s,\"migrated\":%s}\n",
                 Json(SlotIdHex(*id)).c_str(),
                 Json(SlotTypeName(o.add_type)).c_str(),
                 migrating ? "true" : "false");
  } else {
    std::fprintf(o.err, "bkv: added %s slot %s%s\n",
                 std::string(SlotTypeName(o.add_type)).c_str(),
                 SlotIdHex(*id).c_str(),
                 migrating ? " (the set's first keyring: the way you opened "
                             "it is now a slot too)"
                           : "");
  }
  return absl::OkStatus();
}

// The slot `prefix` names, as listed (unverified; for a message only).
std::optional<SlotInfo> Named(KeySlots& slots, const std::string& prefix) {
  auto list = slots.List();
  if (!list.ok() || prefix.empty()) return std::nullopt;
  for (SlotInfo& s : *list) {
    if (SlotIdHex(s.id).rfind(prefix, 0) == 0) return std::move(s);
  }
  return std::nullopt;
}

absl::Status Remove(KeySlots& slots, const SlotCommandOptions& o,
                    const SecretSource& opened_with) {
  BKV_ASSIGN_OR_RETURN(SlotSecret opened, opened_with());
  const std::optional<SlotInfo> named = Named(slots, o.remove_id);
  BKV_ASSIGN_OR_RETURN(bool was_master, slots.Remove(opened, o.remove_id));
  // The vault still releases that slot's secret to the password, and any
  // old keyring copy turns it into the master key (review finding 9).
  if (named && named->type == SlotType::kVault) {
    std::fprintf(o.err,
                 "bkv: the %s record still releases this slot's secret to "
                 "its password, and an old copy of the keyring turns it into "
                 "the master key: delete it with bkv vault delete (unless "
                 "another set's slot uses that account)\n",
                 named->description.c_str());
  }
  if (o.json) {
    std::fprintf(o.out, "{\"removed\":%s,\"secret_is_master_key\":%s}\n",
                 Json(o.remove_id).c_str(), was_master ? "true" : "false");
  }
  std::fprintf(
      o.err,
      "bkv: removed slot %s. Whoever already unwrapped the master key with "
      "it keeps it%s: run bkv rekey to lock them out of later backups\n",
      o.remove_id.c_str(),
      was_master ? ", and this slot's secret IS the master key (a set from "
                   "before key slots), so it still decrypts every object"
                 : "");
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteKeyFile(const std::string& path, const BackupKey& key) {
  SecretBytes text = key.Format();
  BKV_ASSIGN_OR_RETURN(PosixFile file, PosixFile::Create(path));
  BKV_RETURN_IF_ERROR(file.Write(text.Reveal()));
  const uint8_t nl = '\n';
  BKV_RETURN_IF_ERROR(file.Write({&nl, 1}));
  return file.SyncAndClose();
}

absl::StatusOr<SlotSecret> PasskeySecret(KeySlots& slots,
                                         const PasskeyPageOptions& o) {
  BKV_ASSIGN_OR_RETURN(auto requests, slots.PasskeyRequests());
  std::vector<PasskeyParams> enrolled;
  for (const PasskeyRequest& r : requests) enrolled.push_back(r.params);
  if (enrolled.empty()) {
    return PasskeyStatus(
        PasskeyError::kOtherPasskey,
        absl::NotFoundError("this set has no passkey slot: open it with its "
                            "64-digit key or vault password, or add one "
                            "(bkv slot add --passkey)"));
  }
  BKV_ASSIGN_OR_RETURN(PasskeyPageResult r, GetPasskeyOnPage(enrolled, o));
  for (const PasskeyParams& p : enrolled) {
    if (p.credential_id != r.credential_id) continue;
    SlotSecret s = SlotSecret::Passkey(r.prf_output, r.credential_id);
    s.salt = p.salt;
    return s;
  }
  return PasskeyStatus(
      PasskeyError::kOtherPasskey,
      absl::NotFoundError(absl::StrCat(
          "the passkey used (credential ",
          HexEncode(r.credential_id).substr(0, 16),
          "…) has no slot in this set: choose the passkey enrolled for it "
          "(bkv slot list)")));
}

absl::StatusOr<BackupKey> UnlockWithPasskey(KeySlots& slots,
                                            const PasskeyPageOptions& o) {
  BKV_ASSIGN_OR_RETURN(SlotSecret s, PasskeySecret(slots, o));
  auto key = slots.Unlock(s);
  if (!key.ok()) return AsPasskeyError(key.status());
  return key;
}

namespace {

// The rekeyed set's fresh secret: a new 64-digit key written to --out
// before the keyring put (the user never holds a slot without its key), or
// new random bytes for the vault (registered after the replay).
absl::StatusOr<SlotSecret> FreshSecret(const SlotSecret& opened,
                                       const SlotCommandOptions& o) {
  BKV_RETURN_IF_ERROR(RekeyablePasskeyCheck(opened));
  if (opened.type == SlotType::kVault) {
    return SlotSecret::Vault(SecretBytes::Random(32), opened.vault);
  }
  if (o.new_key_file.empty()) {
    return absl::InvalidArgumentError(
        "rekey with a 64-digit key needs --out FILE for the new set's fresh "
        "key (the old key must not open the new set)");
  }
  BackupKey key = BackupKey::Generate();
  BKV_RETURN_IF_ERROR(WriteKeyFile(o.new_key_file, key));
  return SlotSecret::RecoveryKey(key);
}

// A failed rekey: the new key file goes unless the new keyring it opens
// was written (then it is the only way into what was replayed).
absl::Status RekeyFailed(absl::Status s, bool keyring_written,
                         const SlotSecret& fresh, const SlotCommandOptions& o,
                         const BlobStore& to) {
  if (fresh.type != SlotType::kRecoveryKey) return s;
  if (!keyring_written) {
    ::unlink(o.new_key_file.c_str());
    return s;
  }
  return absl::Status(
      s.code(), absl::StrCat(s.message(), "; ", to.url(),
                             " holds a partial set opened by the new key in ",
                             o.new_key_file,
                             ": empty it and remove that "
                             "file before running the rekey again"));
}

void ReportRekey(const RekeyReport& report, const SlotCommandOptions& o,
                 const BlobStore& to) {
  std::vector<std::string> dropped;
  for (const SlotInfo& s : report.dropped) {
    dropped.push_back(Json(SlotIdHex(s.id)));
    std::fprintf(o.err, "bkv: not carried over: slot %s (%s); add it again\n",
                 SlotIdHex(s.id).c_str(), s.description.c_str());
  }
  if (o.json) {
    std::fprintf(o.out, "{\"snapshots\":%zu,\"kept\":%s,\"dropped\":[%s]}\n",
                 report.snapshots, Json(SlotIdHex(report.kept.id)).c_str(),
                 absl::StrJoin(dropped, ",").c_str());
  }
  const bool vault = report.kept.type == SlotType::kVault;
  std::fprintf(
      o.err,
      "bkv: rekeyed %zu snapshots into %s under a new master key, opened by "
      "%s%s. Back up to it from now on; the old store still opens with the "
      "old master key%s: delete its objects once you are satisfied\n",
      report.snapshots, to.url().c_str(),
      vault ? "the vault password (the vault now holds a new secret for the "
              "account, so it no longer opens the old set)"
            : "the new 64-digit key in ",
      vault ? "" : o.new_key_file.c_str(),
      vault ? "" : " and the old 64-digit key");
}

}  // namespace

absl::Status RunRekeyCommand(BlobStore& from, BlobStore& to,
                             const SecretSource& opened_with,
                             const VaultReregister& reregister,
                             const std::string& scratch_parent,
                             const SlotCommandOptions& o) {
  BKV_ASSIGN_OR_RETURN(SlotSecret opened, opened_with());
  BKV_ASSIGN_OR_RETURN(SlotSecret fresh, FreshSecret(opened, o));
  std::string tmpl = scratch_parent + "/bkv-rekey-XXXXXX";
  bool keyring_written = false;
  absl::StatusOr<RekeyReport> report = absl::UnknownError("");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    report = ErrnoStatus(errno, "scratch directory under " + scratch_parent);
  } else {
    report =
        Rekey(from, opened, to, fresh, tmpl, o.state_dir, &keyring_written);
    std::error_code ec;
    std::filesystem::remove_all(tmpl, ec);
  }
  if (!report.ok()) {
    return RekeyFailed(report.status(), keyring_written, fresh, o, to);
  }
  if (fresh.type == SlotType::kVault) {
    absl::Status r = reregister(opened.secret, fresh.secret);
    if (!r.ok()) {
      return absl::Status(
          r.code(),
          absl::StrCat("every snapshot is in ", to.url(),
                       ", but the vault account was not given the new set's "
                       "secret (",
                       r.message(),
                       "): the vault still opens only "
                       "the old set; empty ",
                       to.url(), " and run the rekey again"));
    }
  }
  ReportRekey(*report, o, to);
  return absl::OkStatus();
}

absl::Status RunSlotCommand(BlobStore& store, const SlotCommandOptions& o,
                            const SecretSource& opened_with,
                            const NewSecretSource& new_vault_secret) {
  KeySlots slots(store, {o.state_dir});
  switch (o.action) {
    case SlotCommandOptions::Action::kList:
      return List(slots, o);
    case SlotCommandOptions::Action::kAdd:
      return Add(slots, o, opened_with, new_vault_secret);
    case SlotCommandOptions::Action::kRemove:
      return Remove(slots, o, opened_with);
  }
  return absl::InvalidArgumentError("unknown slot action");
}

}  // namespace bkv
