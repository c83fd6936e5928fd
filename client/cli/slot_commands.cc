// bkv slot list|add|remove and bkv rekey: the CLI glue around
// slot_command.h (what they do) and key_slots.h (the keyring).
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "client/cancel.h"
#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "client/cli/slot_command.h"
#include "crypto/secret_bytes.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

// How a slot command opens the set: a key file, a passkey, or the vault.
SecretSource OpenedWith(Context& c, BlobStore& store) {
  return [&c, &store]() -> absl::StatusOr<SlotSecret> {
    // A key file first: the --vault flags may name the new slot's vault.
    if (auto it = c.args.values.find("--key-file"); it != c.args.values.end()) {
      BKV_ASSIGN_OR_RETURN(BackupKey key, ReadKeyFile(it->second));
      return SlotSecret::RecoveryKey(key);
    }
    KeySlots slots(store, {StateDir()});
    if (!c.args.values.count("--passkey")) {
      BKV_RETURN_IF_ERROR(ExpectVaultSlot(c.args, slots));
      return LoadSecret(c.args, c.err);
    }
    BKV_ASSIGN_OR_RETURN(PasskeyPageOptions o, PasskeyOptions(c.args, c.err));
    return PasskeySecret(slots, o);
  };
}

// Takes a just-registered vault record back (its keyring put failed): one
// recovery proves the password, then the record is deleted, so the account
// is free for the next try. The attempt spent is the deleted record's.
std::function<absl::Status()> UnregisterVault(
    std::shared_ptr<Vault> v, std::shared_ptr<SecretBytes> password) {
  return [v, password]() -> absl::Status {
    // Runs after an interrupt too: the vault calls must not see its token.
    CancelScope uninterrupted(nullptr);
    auto r = v->client->RecoverWithProof(v->account, *password);
    absl::Status s = r.ok() ? v->client->Delete(r->proof) : r.status();
    if (s.ok()) return s;
    return absl::Status(
        s.code(),
        absl::StrCat("the vault account ", v->account,
                     " keeps a key no slot uses (", Explained(s).message(),
                     "); delete it with bkv vault delete"));
  };
}

// A new vault slot's secret: fresh random bytes registered behind a new
// password for an account that holds no key yet.
NewSecretSource NewVaultSecret(Context& c) {
  return [&c]() -> absl::StatusOr<NewSlotSecret> {
    BKV_ASSIGN_OR_RETURN(Vault opened, OpenVault(c.args, c.err));
    auto v = std::make_shared<Vault>(std::move(opened));
    BKV_ASSIGN_OR_RETURN(VaultParams params, VaultSlotParams(c.args, *v));
    BKV_ASSIGN_OR_RETURN(SecretBytes pw, AskPassword(c.args, "new password"));
    auto password = std::make_shared<SecretBytes>(std::move(pw));
    BKV_RETURN_IF_ERROR(ConfirmNewPassword(c.args, *password, v->account));
    SecretBytes secret = SecretBytes::Random(32);
    auto reg = v->client->Register(v->account, *password, secret);
    if (!reg.ok()) return Explained(reg.status());
    return NewSlotSecret{SlotSecret::Vault(secret, std::move(params)),
                         UnregisterVault(v, password)};
  };
}

void Fill(Context& c, SlotCommandOptions& o) {
  o.state_dir = StateDir();
  o.json = c.args.json;
  o.out = c.out;
  o.err = c.err;
}

absl::Status SlotCmd(Context& c, SlotCommandOptions o) {
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  Fill(c, o);
  // Ctrl-C or SIGTERM stops the keyring put, and what `slot add` made for
  // the new slot is taken back (review finding 4).
  CatchInterrupts(c);
  if (o.action != SlotCommandOptions::Action::kList) {
    BKV_ASSIGN_OR_RETURN(o.passkey, PasskeyOptions(c.args, c.err));
  }
  return RunSlotCommand(*store, o, OpenedWith(c, *store), NewVaultSecret(c));
}

absl::Status SlotList(Context& c) {
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kList;
  return SlotCmd(c, std::move(o));
}

absl::Status SlotAdd(Context& c) {
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kAdd;
  const std::string& kind = c.args.operands.at(0);
  if (kind == "passkey") {
    o.add_type = SlotType::kPasskey;
  } else if (kind == "recovery-key") {
    o.add_type = SlotType::kRecoveryKey;
    o.new_key_file = Value(c.args, "--out");
  } else {
    o.add_type = SlotType::kVault;
    if (!c.args.values.count("--key-file") &&
        !c.args.values.count("--passkey")) {
      return Usage(
          "slot add vault: open the set with --key-file F or --passkey (the "
          "--vault flags name the new slot's vault)");
    }
  }
  return SlotCmd(c, std::move(o));
}

absl::Status SlotRemove(Context& c) {
  SlotCommandOptions o;
  o.action = SlotCommandOptions::Action::kRemove;
  o.remove_id = c.args.operands.at(0);
  return SlotCmd(c, std::move(o));
}

// A rekey opened with the vault keeps its login (client, password): the
// account then gets the new set's fresh secret (review finding 1).
struct VaultLogin {
  Vault v;
  SecretBytes password;
};

SecretSource RekeyOpenedWith(Context& c, BlobStore& store,
                             std::shared_ptr<VaultLogin> login) {
  SecretSource other = OpenedWith(c, store);
  return [&c, &store, other, login]() -> absl::StatusOr<SlotSecret> {
    if (c.args.values.count("--key-file") || c.args.values.count("--passkey") ||
        !c.args.values.count("--vault")) {
      return other();
    }
    KeySlots slots(store, {StateDir()});
    BKV_RETURN_IF_ERROR(ExpectVaultSlot(c.args, slots));
    BKV_ASSIGN_OR_RETURN(login->v, OpenVault(c.args, c.err));
    BKV_ASSIGN_OR_RETURN(VaultParams params, VaultSlotParams(c.args, login->v));
    BKV_ASSIGN_OR_RETURN(login->password, AskPassword(c.args, "password"));
    auto secret = login->v.client->Recover(login->v.account, login->password);
    if (!secret.ok()) return Explained(secret.status());
    return SlotSecret::Vault(*secret, std::move(params));
  };
}

// Proves the password again (the first proof may have expired during the
// replay), checks the account still holds the secret the rekey opened with,
// then registers the fresh one behind the same password.
VaultReregister Reregister(std::shared_ptr<VaultLogin> login) {
  return [login](const SecretBytes& old,
                 const SecretBytes& fresh) -> absl::Status {
    Vault& v = login->v;
    if (!v.client) {
      return absl::FailedPreconditionError(
          "the rekey was not opened with --vault: nothing to re-register");
    }
    auto r = v.client->RecoverWithProof(v.account, login->password);
    if (!r.ok()) return Explained(r.status());
    if (!ConstantTimeEquals(r->backup_key.Reveal(), old.Reveal())) {
      return absl::AbortedError(
          "the vault account's secret changed while the rekey ran");
    }
    auto reg = v.client->Register(v.account, login->password, fresh, r->proof);
    return reg.ok() ? absl::OkStatus() : Explained(reg.status());
  };
}

absl::Status Rekey(Context& c) {
  // The new set would get a realm slot for a fresh secret that nothing
  // registers at the realms (review of tsdk, finding 5): refused before any
  // recovery spends an attempt.
  if (c.args.values.count("--realms")) {
    return Usage(
        "bkv rekey does not support --realms yet: open the old set with "
        "--key-file or --passkey, or back up into a new store with --realms");
  }
  BKV_ASSIGN_OR_RETURN(auto from, Store(c, "--from"));
  BKV_ASSIGN_OR_RETURN(auto to, Store(c, "--to"));
  SlotCommandOptions o;
  Fill(c, o);
  o.new_key_file = Value(c.args, "--out");
  // An interrupt stops the replay; the scratch plaintext is then removed.
  CatchInterrupts(c);
  const char* tmp = std::getenv("TMPDIR");
  auto login = std::make_shared<VaultLogin>();
  return RunRekeyCommand(*from, *to, RekeyOpenedWith(c, *from, login),
                         Reregister(login), tmp && *tmp ? tmp : "/tmp", o);
}

}  // namespace

void RegisterSlotCommands(CommandTree& t) {
  CLI::App* slot = t.Add(t.root(), "slot", "the set's ways in (key slots)",
                         "A passkey, the 64-digit key, the vault password: "
                         "each slot wraps the set's master key.",
                         nullptr);
  CLI::App* l = t.Add(*slot, "list", "the set's slots",
                      "Id, type and parameters of each slot.", SlotList);
  t.Value(l, "--from", "URL", "the store (or $BKV_STORE)");
  CLI::App* a = t.Add(
      *slot, "add", "add a way in, opening the set with one it has",
      "Re-uploads nothing. passkey: serves a one-time page on 127.0.0.1 and "
      "prints its URL; recovery-key: writes a new 64-digit key to --out F; "
      "vault: registers a new secret behind a new password (open the set "
      "with --key-file or --passkey). A set from before key slots gets its "
      "keyring here.",
      SlotAdd);
  t.Operand(a, "KIND", "passkey, recovery-key or vault")
      ->check(CLI::IsMember({"passkey", "recovery-key", "vault"}));
  t.Value(a, "--from", "URL", "the store (or $BKV_STORE)");
  t.Value(a, "--out", "F", "recovery-key: write the new key here");
  t.KeyFlags(a);
  CLI::App* r = t.Add(*slot, "remove", "remove a slot",
                      "SLOT-ID may be a unique prefix; the last slot is "
                      "refused. Whoever already unwrapped the master key "
                      "keeps it: bkv rekey.",
                      SlotRemove);
  t.Operand(r, "SLOT-ID", "the slot (bkv slot list)");
  t.Value(r, "--from", "URL", "the store (or $BKV_STORE)");
  t.KeyFlags(r);
  CLI::App* k = t.Add(
      t.root(), "rekey", "a new master key, into an empty store",
      "Every snapshot is re-encrypted into the empty store --to (restored to "
      "a private directory under $TMPDIR, then backed up with its path and "
      "time). Its keyring gets one slot with a fresh secret: opened with a "
      "key file, a new 64-digit key written to --out F; opened with the "
      "vault, the account gets a new secret behind the same password (the "
      "vault no longer opens the old set). A passkey is refused: rekey with "
      "another slot, then enrol a new passkey. Whoever kept the old master "
      "key or an old secret reads nothing written there.",
      Rekey);
  t.Value(k, "--from", "URL", "the store (or $BKV_STORE)");
  t.Value(k, "--to", "NEWURL", "an empty store");
  t.Value(k, "--out", "F", "opened with a key file: the new key goes here");
  t.KeyFlags(k);
}

}  // namespace bkv::cli
