// bkv vault status|delete|change-password|reset: the account's record.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

const char* StateName(client::VaultStatus::State s) {
  return s == client::VaultStatus::State::kActive   ? "active"
         : s == client::VaultStatus::State::kLocked ? "locked"
                                                    : "none";
}

absl::Status VaultStatusCmd(Context& c) {
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
  auto st = v.client->Status();
  if (!st.ok()) return Explained(st.status());
  if (c.args.json) {
    std::fprintf(c.out,
                 "{\"status\":\"%s\",\"attempts_remaining\":%u,"
                 "\"attempt_limit\":%u,\"registration_id\":%llu,"
                 "\"reset_due_unix_ms\":%lld}\n",
                 StateName(st->state), st->attempts_remaining,
                 st->attempt_limit,
                 static_cast<unsigned long long>(st->registration_id),
                 static_cast<long long>(st->reset_due_unix_ms));
    return absl::OkStatus();
  }
  std::fprintf(c.out, "%s: %s, %u of %u attempts remaining\n",
               v.account.c_str(), StateName(st->state), st->attempts_remaining,
               st->attempt_limit);
  if (st->registration_id != 0) {
    std::fprintf(c.out, "registration: %016llx\n",
                 static_cast<unsigned long long>(st->registration_id));
  }
  if (st->reset_due_unix_ms != 0) {
    std::fprintf(c.out,
                 "reset requested: due %s (a successful recovery cancels "
                 "it)\n",
                 UtcTime(st->reset_due_unix_ms).c_str());
  }
  return absl::OkStatus();
}

// An ACTIVE record is deleted with a proof of its password (one recovery),
// or without one once a requested reset is due.
absl::Status VaultDeleteCmd(Context& c) {
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
  std::string proof;
  {
    auto st = v.client->Status();
    if (!st.ok()) return Explained(st.status());
    // Without a way to ask, the vault's refusal below says what to do.
    auto pw = st->state == client::VaultStatus::State::kActive
                  ? AskPassword(c.args, "password")
                  : absl::StatusOr<SecretBytes>(absl::NotFoundError(""));
    if (pw.ok()) {
      auto r = v.client->RecoverWithProof(v.account, *pw);
      if (!r.ok()) return Explained(r.status());
      proof = std::move(r->proof);
    }
  }
  absl::Status s = v.client->Delete(proof);
  if (client::VaultError::From(s).kind ==
      client::VaultErrorKind::kProofRequired) {
    return Usage(
        "the record is active: deleting it needs its password (typed at "
        "the prompt, or --password-stdin), or `bkv vault reset --request` and, "
        "once the "
        "reset is due, delete again");
  }
  BKV_RETURN_IF_ERROR(Explained(s));
  if (c.args.json) {
    std::fprintf(c.out, "{\"deleted\":true}\n");
  } else {
    std::fprintf(c.out, "%s: record and key deleted from the vault\n",
                 v.account.c_str());
  }
  return absl::OkStatus();
}

// With realms: a recovery with the current password (one attempt at each
// realm of the group), then the new one registered at all n; a realm down
// changes nothing (docs/threshold.md, "Password change").
// One answer for both password changes: `where` (" at all 3 realms" or
// ""), the attempt figure in words, and the limit for --json.
absl::Status SayPasswordChanged(Context& c, const std::string& account,
                                const std::string& where,
                                const std::string& attempts, uint32_t limit,
                                const std::string& lagging = "") {
  if (c.args.json) {
    std::fprintf(
        c.out, "{\"password_changed\":true,\"attempt_limit\":%u%s}\n", limit,
        lagging.empty()
            ? ""
            : absl::StrCat(",\"lagging\":", JsonString(lagging)).c_str());
    return absl::OkStatus();
  }
  std::fprintf(c.out,
               "%s: password changed%s; the backup key is the same (%s)\n",
               account.c_str(), where.c_str(), attempts.c_str());
  return absl::OkStatus();
}

absl::Status RealmsChangePassword(Context& c) {
  const std::string account = Value(c.args, "--account");
  if (account.empty())
    return Usage("--realms needs --account (or BKV_ACCOUNT)");
  BKV_ASSIGN_OR_RETURN(auto realms,
                       OpenRealms(c.args, c.err, Value(c.args, "--realms")));
  BKV_ASSIGN_OR_RETURN(SecretBytes old_pw,
                       AskPassword(c.args, "current password"));
  BKV_ASSIGN_OR_RETURN(SecretBytes new_pw, AskPassword(c.args, "new password"));
  BKV_RETURN_IF_ERROR(ConfirmNewPassword(c.args, new_pw, account));
  auto reg = realms->ChangePassword(account, old_pw, new_pw);
  if (!reg.ok() && client::IsPasswordChangeUnknown(reg.status())) {
    // Either password may work: its own exit code (17, rthr3 finding 4).
    return WithExit(kChangeUnknown,
                    std::string(Explained(reg.status()).message()));
  }
  if (!reg.ok()) return Explained(reg.status());
  // A migration that left a realm undeleted (review of rset, finding 1):
  // there the old password still opens the key.
  const std::string previous = Value(c.args, "--realms") + ".previous";
  if (std::filesystem::exists(previous)) {
    std::fprintf(c.err,
                 "bkv: SECURITY: %s remains from a realm-set migration: a "
                 "realm that left may still hold the old registration, which "
                 "the old password opens; run `bkv realms migrate` again "
                 "until it exits 0\n",
                 previous.c_str());
  }
  const int n = realms->realms().n();
  const std::string lagging = client::DescribeFaults(reg->lagging);
  const int took = n - static_cast<int>(reg->lagging.size());
  BKV_RETURN_IF_ERROR(SayPasswordChanged(
      c, account,
      lagging.empty() ? absl::StrCat(" at all ", n, " realms")
                      : absl::StrCat(" (the new password is in force at ", took,
                                     " of ", n, " realms)"),
      absl::StrCat(reg->per_realm_limit, " attempts per realm"),
      reg->per_realm_limit, lagging));
  if (lagging.empty()) return absl::OkStatus();
  // In force, yet one failure fewer is survived: its own exit code (16).
  absl::Status s = WithExit(
      kChangedDegraded,
      absl::StrCat("WARNING: the new password is in force, but ", lagging,
                   " did not take it: tell its operator; the next recovery "
                   "(bkv restore --realms) repairs it"));
  if (c.args.json) s.SetPayload(kReportedPayload, absl::Cord("1"));
  return s;
}

absl::Status VaultChangePasswordCmd(Context& c) {
  if (c.args.values.count("--realms")) return RealmsChangePassword(c);
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
  BKV_ASSIGN_OR_RETURN(SecretBytes old_pw,
                       AskPassword(c.args, "current password"));
  BKV_ASSIGN_OR_RETURN(SecretBytes new_pw, AskPassword(c.args, "new password"));
  BKV_RETURN_IF_ERROR(ConfirmNewPassword(c.args, new_pw, v.account));
  auto reg = v.client->ChangePassword(v.account, old_pw, new_pw);
  if (!reg.ok()) return Explained(reg.status());
  return SayPasswordChanged(c, v.account, "",
                            absl::StrCat(reg->attempt_limit, " attempts"),
                            reg->attempt_limit);
}

absl::Status ResetRequest(Context& c, Vault& v) {
  auto due = v.client->RequestReset();
  if (!due.ok()) return Explained(due.status());
  if (c.args.json) {
    std::fprintf(c.out, "{\"reset_due_unix_ms\":%lld}\n",
                 static_cast<long long>(*due));
  } else {
    std::fprintf(c.out,
                 "%s: reset requested; from %s a new password can be set "
                 "without the old one (bkv vault reset --complete). A "
                 "successful recovery before then cancels it.\n",
                 v.account.c_str(), UtcTime(*due).c_str());
  }
  return absl::OkStatus();
}

// Once the reset is due: a new password, with the user's 64-digit key
// (--key-file; old backups stay readable) or a new key (they do not).
absl::Status ResetComplete(Context& c, Vault& v) {
  BKV_ASSIGN_OR_RETURN(SecretBytes pw, AskPassword(c.args, "new password"));
  BKV_RETURN_IF_ERROR(ConfirmNewPassword(c.args, pw, v.account));
  std::optional<BackupKey> key;
  if (auto it = c.args.values.find("--key-file"); it != c.args.values.end()) {
    BKV_ASSIGN_OR_RETURN(key, ReadKeyFile(it->second));
  }
  auto st = v.client->Status();
  if (!st.ok()) return Explained(st.status());
  if (st->state == client::VaultStatus::State::kLocked) {
    BKV_RETURN_IF_ERROR(Explained(v.client->Delete()));
  }
  if (!key) key = BackupKey::Generate();
  auto reg = v.client->Register(v.account, pw, key->secret());
  if (client::VaultError::From(reg.status()).kind ==
      client::VaultErrorKind::kProofRequired) {
    return Usage(
        st->reset_due_unix_ms == 0
            ? std::string("no reset is pending: bkv vault reset --request")
            : absl::StrCat("the reset is not due until ",
                           UtcTime(st->reset_due_unix_ms)));
  }
  if (!reg.ok()) return Explained(reg.status());
  const bool new_key = !c.args.values.count("--key-file");
  if (c.args.json) {
    std::fprintf(c.out, "{\"attempt_limit\":%u,\"new_key\":%s}\n",
                 reg->attempt_limit, new_key ? "true" : "false");
  } else {
    std::fprintf(c.out, "%s: new password set (%u attempts)\n",
                 v.account.c_str(), reg->attempt_limit);
  }
  if (new_key) {
    std::fprintf(c.err,
                 "bkv: a NEW backup key was registered: backups made with "
                 "the old key cannot be read unless you have its 64-digit "
                 "key\n");
  }
  return absl::OkStatus();
}

absl::Status VaultResetCmd(Context& c) {
  const bool request = c.args.values.count("--request") > 0;
  const bool complete = c.args.values.count("--complete") > 0;
  if (request == complete) {
    return Usage("bkv vault reset --request | --complete [--key-file F]");
  }
  BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(c.args, c.err));
  return request ? ResetRequest(c, v) : ResetComplete(c, v);
}

}  // namespace

void RegisterVaultCommands(CommandTree& t) {
  CLI::App* v = t.Add(t.root(), "vault", "the account's record in the vault",
                      "", nullptr);
  CLI::App* status = t.Add(
      *v, "status", "the account's record; spends no attempt",
      "State, attempts remaining of the vault's limit, registration id, a "
      "pending reset; spends no attempt.",
      VaultStatusCmd);
  CLI::App* del = t.Add(
      *v, "delete", "delete the record and its key",
      "An active record needs its password (one attempt, proves it) or a due "
      "reset.",
      VaultDeleteCmd);
  CLI::App* change = t.Add(
      *v, "change-password", "store the same key behind a new password",
      "Asks for the current and the new password (the new one twice) on the "
      "terminal, or reads them (two lines) with --password-stdin; proves the "
      "current one (one attempt), then stores the same backup key behind the "
      "new one. With --realms F --token-dir D: the proof spends one attempt "
      "at each realm of the agreeing group, and the new password is "
      "registered at every realm of the set; if a realm is down or cannot be "
      "repaired nothing changes (\"password not changed\", exit 1: the "
      "current password keeps working): repeat once it is back. Exit 16: the "
      "NEW password is in force (t or more realms took it) but a realm named "
      "on stderr did not: tell its operator; the next recovery repairs it. "
      "Exit 17: either password may be in force (the commit was cut): run "
      "the same change again. Any other failure: the OLD password is in "
      "force.",
      VaultChangePasswordCmd);
  CLI::App* reset = t.Add(
      *v, "reset", "forgot the password: --request, then --complete",
      "--request starts the vault's reset delay and prints when it is due; "
      "once due, --complete asks for a new password and registers the "
      "64-digit key of --key-file behind it, or a NEW key (backups made with "
      "the old key are then unreadable unless you have its 64-digit key).",
      VaultResetCmd);
  t.Switch(reset, "--request", "start the reset delay");
  t.Switch(reset, "--complete", "set a new password once the reset is due");
  t.Value(reset, "--key-file", "F", "keep this 64-digit key");
  for (CLI::App* cmd : {status, del, change, reset}) t.VaultFlags(cmd);
}

}  // namespace bkv::cli
