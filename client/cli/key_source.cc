#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/backup_set.h"
#include "client/cli/command.h"
#include "client/cli/password.h"
#include "client/cli/settings.h"
#include "client/cli/slot_command.h"
#include "client/posix_file.h"
#include "client/realm_set_file.h"
#include "client/threshold_client.h"
#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

// Where the backup key comes from: a key file, or the vault behind a
// password (command.h).
namespace bkv::cli {

// The vault password from stdin (--password-stdin) or the terminal's prompt
// (client/cli/password.h); a missing or mistyped one is a usage error.
absl::StatusOr<SecretBytes> AskPassword(const Args& a, const char* what) {
  auto pw = cli::ReadPassword(a.values.count("--password-stdin") > 0, what);
  if (!pw.ok()) return Usage(std::string(pw.status().message()));
  return pw;
}

// A password being set: asked twice on a terminal, and strong enough.
absl::Status ConfirmNewPassword(const Args& a, const SecretBytes& pw,
                                const std::string& account) {
  absl::Status s = cli::ConfirmNewPassword(
      a.values.count("--password-stdin") > 0, pw, account);
  return s.ok() ? s : Usage(std::string(s.message()));
}

// A vault failure with the message the classifier gives it: what happened
// and what it did to the attempt counter. Payloads (the typed error) kept.
absl::Status Explained(const absl::Status& s) {
  if (s.ok()) return s;
  return client::WithMessage(
      s, client::DescribeVaultError(client::VaultError::From(s)));
}

namespace {

absl::Status VaultOptionsFrom(const Args& a, FILE* err,
                              client::VaultOptions& o) {
  if (auto it = a.values.find("--vault-ca"); it != a.values.end()) {
    BKV_ASSIGN_OR_RETURN(o.tls_root_certs,
                         ReadSmallFile(it->second, "CA file"));
    o.tls = true;
  }
  o.insecure_plaintext = a.values.count("--insecure-plaintext") > 0;
  if (auto it = a.values.find("--opaque-context"); it != a.values.end()) {
    o.opaque_context = it->second;
  }
  if (auto it = a.values.find("--server-identity"); it != a.values.end()) {
    o.server_identity = it->second;
  }
  int max_wait_s = 5;
  if (auto it = a.values.find("--max-wait"); it != a.values.end()) {
    if (!absl::SimpleAtoi(it->second, &max_wait_s) || max_wait_s < 0) {
      return Usage("--max-wait needs a number of seconds");
    }
  }
  o.max_retry_wait = std::chrono::seconds(max_wait_s);
  o.on_wait = [err](std::chrono::milliseconds wait,
                    const client::VaultError& why) {
    if (wait <= std::chrono::seconds(1)) return;
    std::fprintf(err, "bkv: the vault asked to wait (%s); retrying in %.1f s\n",
                 client::VaultErrorKindName(why.kind), wait.count() / 1000.0);
  };
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Vault> OpenVault(const Args& a, FILE* err) {
  BKV_ASSIGN_OR_RETURN(std::string address, Need(a, "--vault"));
  client::VaultOptions o;
  // ADDR,ADDR,...: nodes of one vault; the first is tried first.
  std::vector<std::string> nodes =
      absl::StrSplit(address, ',', absl::SkipWhitespace());
  if (nodes.empty()) return Usage("--vault needs an address");
  o.address = nodes[0];
  o.failover_addresses.assign(nodes.begin() + 1, nodes.end());
  const std::string key_hex = Value(a, "--vault-key");
  if (key_hex.empty()) {
    return Usage("--vault needs --vault-key HEX (or BKV_VAULT_KEY) to pin it");
  }
  BKV_ASSIGN_OR_RETURN(o.server_public_key,
                       client::ParseServerPublicKey(key_hex));
  Vault v;
  v.account = Value(a, "--account");
  if (v.account.empty())
    return Usage("--vault needs --account (or BKV_ACCOUNT)");
  std::string token;
  if (auto it = a.values.find("--token-file"); it != a.values.end()) {
    BKV_ASSIGN_OR_RETURN(token, ReadSmallFile(it->second, "token file"));
  } else if (auto t = ProcessEnv("BKV_ACCOUNT_TOKEN")) {
    token = *t;
  }
  if (token.empty()) {
    return Usage(
        "--vault needs an account token: --token-file F, BKV_TOKEN_FILE, "
        "BKV_ACCOUNT_TOKEN or token_file in the config file");
  }
  o.account_token = [token] { return token; };
  BKV_RETURN_IF_ERROR(VaultOptionsFrom(a, err, o));
  auto client = client::VaultClient::Create(std::move(o));
  if (!client.ok()) return Usage(std::string(client.status().message()));
  v.client = *std::move(client);
  return v;
}

absl::StatusOr<BackupKey> ReadKeyFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "key file " + path);
  SecretBytes buf(4096);
  ssize_t n = ::read(fd, buf.RevealMutable().data(), buf.size());
  ::close(fd);
  if (n < 0) return ErrnoStatus(errno, "read key file " + path);
  std::string_view text = buf.RevealAsString().substr(0, n);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  auto key = BackupKey::Parse(text);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("key file ", path, ": ", key.status().message()));
  }
  return key;
}

namespace {

// A new key is registered only into an empty store: a store that already
// holds backups was made under some key, and a vault that answers "no
// record" (lost data, or an answer we cannot authenticate) must not lead to
// a second key whose backups then supersede and prune the first ones.
absl::Status RefuseIfStoreHasBackups(BlobStore& store,
                                     const std::string& account) {
  BKV_ASSIGN_OR_RETURN(auto objects, store.List());
  for (const auto& o : objects) {
    if (o.name == BackupSet::kManifestName ||
        o.name == Repository::kConfigName ||
        absl::StartsWith(o.name, "backup-")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the vault holds no key for ", account, ", but ", store.url(),
          " already holds backups, so no new key is registered. If you have "
          "their 64-digit key, put it back behind a password: bkv vault "
          "reset --complete --key-file F; or back up to an empty store"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BackupKey> RegisterNewKey(Vault& v, const SecretBytes& password,
                                         BlobStore& store, FILE* err) {
  BKV_RETURN_IF_ERROR(RefuseIfStoreHasBackups(store, v.account));
  BackupKey key = BackupKey::Generate();
  auto reg = v.client->Register(v.account, password, key.secret());
  if (!reg.ok()) return Explained(reg.status());
  std::fprintf(err,
               "bkv: registered a new backup key in the vault for %s "
               "(%u attempts)\n",
               v.account.c_str(), reg->attempt_limit);
  return key;
}

}  // namespace

absl::StatusOr<std::unique_ptr<client::ThresholdClient>> OpenRealms(
    const Args& a, FILE* err, const std::string& path,
    std::span<const client::RetiredRealm> retired) {
  client::ThresholdOptions o;
  BKV_ASSIGN_OR_RETURN(auto set,
                       client::LoadRealmSetFile(path, nullptr, &o.retired));
  BKV_ASSIGN_OR_RETURN(std::string dir, Need(a, "--token-dir"));
  BKV_RETURN_IF_ERROR(VaultOptionsFrom(a, err, o.vault));
  o.state_dir = StateDir();
  // A realm id names a file in the token directory, never a symbolic link
  // to another file (review of tsdk, finding 9).
  const auto token = [dir](const std::string& realm_id) {
    return ReadSmallFile(dir + "/" + realm_id, "token file",
                         /*no_symlink=*/true);
  };
  o.account_token = [token](const std::string& realm_id) {
    auto t = token(realm_id);
    return t.ok() ? *t : std::string();
  };
  for (const auto& r : set.realms()) {
    if (std::any_of(retired.begin(), retired.end(),
                    [&](const auto& x) { return x.id == r.id; })) {
      continue;  // asked once, best effort: no token, no answer
    }
    auto t = token(r.id);
    if (!t.ok() && absl::IsFailedPrecondition(t.status())) {
      return Usage(std::string(t.status().message()));
    }
    if (!t.ok() || t->empty()) {
      return Usage(absl::StrCat("--token-dir ", dir, " has no token for realm ",
                                r.id, " (a file named ", r.id, ")"));
    }
  }
  auto c = client::ThresholdClient::Create(std::move(set), std::move(o));
  if (!c.ok()) return Usage(std::string(c.status().message()));
  return std::move(*c);
}

namespace {

// The slot of a realm set: its "vault key" is a digest of what identifies
// the set (t, L, the ordered ids and identity keys: what the descriptor
// check compares), not the endpoints, so a realm that moves keeps the slot
// (review of tsdk, finding 10); a set that replaced another carries that
// one's slot in its `slot` line (docs/threshold.md, "The key slot").
absl::StatusOr<VaultParams> RealmSlotParams(const Args& a) {
  BKV_ASSIGN_OR_RETURN(std::string path, Need(a, "--realms"));
  client::RealmSetSlot slot;
  BKV_ASSIGN_OR_RETURN(auto set, client::LoadRealmSetFile(path, &slot));
  VaultParams p;
  p.vault_key = slot ? *slot : client::RealmSetDigest(set);
  p.account = Value(a, "--account");
  if (p.account.empty())
    return Usage("--realms needs --account (or BKV_ACCOUNT)");
  return p;
}

absl::StatusOr<std::unique_ptr<client::ThresholdClient>> OpenRealms(
    const Args& a, FILE* err) {
  return OpenRealms(a, err, Value(a, "--realms"));
}

// The realm client whose rotation may still run: kept until the command
// ends (WaitForRealmRotation), so the command's work overlaps it.
std::unique_ptr<client::ThresholdClient>& RotatingRealms() {
  static auto* held = new std::unique_ptr<client::ThresholdClient>();
  return *held;
}

void SayNotRotated(FILE* err, const absl::Status& why) {
  // A LOCKED or lagging realm that could not be repaired is a warning: the
  // set now survives fewer realm failures (docs/threshold.md, "Repair").
  const bool degraded = client::VaultError::From(why).kind ==
                        client::VaultErrorKind::kRealmDegraded;
  std::fprintf(err,
               "bkv: %sthe key was not re-registered with fresh shares "
               "(%s); tried again after the next recovery\n",
               degraded ? "WARNING: " : "", std::string(why.message()).c_str());
}

// A wrong password right after Plan completed a change carries the note
// too (realm3 review finding 4): the user reads the error, not stderr.
absl::Status WithNote(const absl::Status& s, const std::string& note) {
  if (note.empty() || client::VaultError::From(s).kind !=
                          client::VaultErrorKind::kInvalidPassword) {
    return s;
  }
  return client::WithMessage(s, absl::StrCat(s.message(), "; note: ", note));
}

absl::StatusOr<SlotSecret> LoadRealmSecret(const Args& a, FILE* err,
                                           BlobStore* register_into) {
  BKV_ASSIGN_OR_RETURN(VaultParams params, RealmSlotParams(a));
  BKV_ASSIGN_OR_RETURN(auto realms, OpenRealms(a, err));
  BKV_ASSIGN_OR_RETURN(SecretBytes password, AskPassword(a, "password"));
  auto plan = realms->Plan(params.account);
  if (!plan.ok() && register_into != nullptr &&
      client::VaultError::From(plan.status()).kind ==
          client::VaultErrorKind::kNotRegistered) {
    BKV_RETURN_IF_ERROR(ConfirmNewPassword(a, password, params.account));
    BKV_RETURN_IF_ERROR(
        RefuseIfStoreHasBackups(*register_into, params.account));
    BackupKey key = BackupKey::Generate();
    auto reg = realms->Register(params.account, password, key.secret());
    if (!reg.ok()) return Explained(reg.status());
    std::fprintf(err,
                 "bkv: registered a new backup key at %d realms for %s "
                 "(%u attempts per realm)\n",
                 realms->realms().n(), params.account.c_str(),
                 reg->per_realm_limit);
    return SlotSecret::Vault(key.secret(), std::move(params));
  }
  if (!plan.ok()) return Explained(plan.status());
  // Before the counted try: a wrong password right after a completed change
  // is then explained (realm3 review finding 4).
  if (!plan->rolled_forward.empty()) {
    std::fprintf(err, "bkv: note: %s\n", plan->rolled_forward.c_str());
  }
  auto got = realms->Recover(params.account, password);
  // The note after Explained, which rewrites the message (rthr review 4).
  if (!got.ok()) return WithNote(Explained(got.status()), plan->rolled_forward);
  if (!got->rolled_forward.empty()) {
    std::fprintf(err, "bkv: note: %s\n", got->rolled_forward.c_str());
  }
  if (!got->faults.empty()) {
    std::fprintf(err, "bkv: WARNING: realm fault, excluded: %s\n",
                 client::DescribeFaults(got->faults).c_str());
  }
  if (!got->lagging.empty()) {  // a LOCKED realm may mean guesses there
    std::fprintf(err, "bkv: note: not on the recovered registration: %s\n",
                 client::DescribeFaults(got->lagging).c_str());
  }
  if (!got->rotation.ok()) SayNotRotated(err, got->rotation);
  if (got->rotation_started) RotatingRealms() = std::move(realms);
  return SlotSecret::Vault(got->backup_key, std::move(params));
}

}  // namespace

void WaitForRealmRotation(FILE* err) {
  std::unique_ptr<client::ThresholdClient>& realms = RotatingRealms();
  if (realms == nullptr) return;
  auto ended = realms->WaitForRotation();
  if (ended.has_value() && !ended->status.ok()) {
    SayNotRotated(err, ended->status);
  }
  if (ended.has_value() && !ended->repaired.empty()) {
    std::fprintf(err, "bkv: repaired %s: re-registered with fresh shares\n",
                 absl::StrJoin(ended->repaired, ", ").c_str());
  }
  realms.reset();
}

absl::StatusOr<VaultParams> VaultSlotParams(const Args& a, const Vault& v) {
  BKV_ASSIGN_OR_RETURN(auto key,
                       client::ParseServerPublicKey(Value(a, "--vault-key")));
  return VaultParams{key, v.account};
}

absl::StatusOr<SlotSecret> LoadSecret(const Args& a, FILE* err,
                                      BlobStore* register_into) {
  if (a.values.count("--realms")) {
    if (a.values.count("--vault"))
      return Usage("--realms or --vault, not both");
    return LoadRealmSecret(a, err, register_into);
  }
  if (a.values.count("--vault")) {
    BKV_ASSIGN_OR_RETURN(Vault v, OpenVault(a, err));
    BKV_ASSIGN_OR_RETURN(VaultParams params, VaultSlotParams(a, v));
    BKV_ASSIGN_OR_RETURN(SecretBytes password, AskPassword(a, "password"));
    auto st = v.client->Status();
    if (!st.ok()) return Explained(st.status());
    if (st->state == client::VaultStatus::State::kNone && register_into) {
      BKV_RETURN_IF_ERROR(ConfirmNewPassword(a, password, v.account));
      BKV_ASSIGN_OR_RETURN(BackupKey key,
                           RegisterNewKey(v, password, *register_into, err));
      return SlotSecret::Vault(key.secret(), std::move(params));
    }
    auto secret = v.client->Recover(v.account, password);
    if (!secret.ok()) return Explained(secret.status());
    return SlotSecret::Vault(*secret, std::move(params));
  }
  if (a.values.count("--password-stdin")) {
    return Usage("--password-stdin needs --vault ADDR or --realms F");
  }
  BKV_ASSIGN_OR_RETURN(std::string path, Need(a, "--key-file"));
  BKV_ASSIGN_OR_RETURN(BackupKey key, ReadKeyFile(path));
  return SlotSecret::RecoveryKey(key);
}

namespace {

// $BROWSER, else xdg-open, with the URL as its one argument. The URL then
// shows in that process's argv to local users; the page is single-load
// (docs/threat-model.md, key slots).
void OpenBrowser(const std::string& url, FILE* err) {
  const char* browser = std::getenv("BROWSER");
  std::string prog = browser && *browser ? browser : "xdg-open";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execlp(prog.c_str(), prog.c_str(), url.c_str(), nullptr);
    ::_exit(127);
  }
  if (pid < 0) std::fprintf(err, "bkv: could not start %s\n", prog.c_str());
}

}  // namespace

absl::StatusOr<PasskeyPageOptions> PasskeyOptions(const Args& a, FILE* err) {
  PasskeyPageOptions o;
  if (auto it = a.values.find("--rp-id"); it != a.values.end()) {
    o.rp_id = it->second;
  }
  if (auto it = a.values.find("--passkey-timeout"); it != a.values.end()) {
    if (!absl::SimpleAtoi(it->second, &o.timeout_s) || o.timeout_s <= 0) {
      return Usage("--passkey-timeout needs a number of seconds");
    }
  }
  const bool open = a.values.count("--open") > 0;
  o.on_url = [err, open](const std::string& url) {
    std::fprintf(err, "bkv: open this page to use your passkey: %s\n",
                 url.c_str());
    std::fflush(err);
    if (open) OpenBrowser(url, err);
  };
  return o;
}

absl::Status ExpectVaultSlot(const Args& a, KeySlots& slots) {
  if (a.values.count("--realms")) {
    SlotSecret who;
    who.type = SlotType::kVault;
    BKV_ASSIGN_OR_RETURN(who.vault, RealmSlotParams(a));
    return slots.ExpectSlot(who);
  }
  if (!a.values.count("--vault") || Value(a, "--vault-key").empty()) {
    return absl::OkStatus();
  }
  // A set whose keyring has no slot for this vault and account refuses
  // before the login: no attempt is spent on it.
  SlotSecret who;
  who.type = SlotType::kVault;
  BKV_ASSIGN_OR_RETURN(who.vault.vault_key,
                       client::ParseServerPublicKey(Value(a, "--vault-key")));
  who.vault.account = Value(a, "--account");
  return slots.ExpectSlot(who);
}

absl::StatusOr<BackupKey> LoadKey(const Args& a, FILE* err, BlobStore& store,
                                  bool may_register) {
  KeySlots slots(store, {StateDir()});
  if (a.values.count("--passkey")) {
    BKV_ASSIGN_OR_RETURN(PasskeyPageOptions o, PasskeyOptions(a, err));
    return UnlockWithPasskey(slots, o);
  }
  BKV_RETURN_IF_ERROR(ExpectVaultSlot(a, slots));
  BKV_ASSIGN_OR_RETURN(SlotSecret secret,
                       LoadSecret(a, err, may_register ? &store : nullptr));
  return slots.Unlock(secret);
}

}  // namespace bkv::cli
