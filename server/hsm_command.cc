#include "server/hsm_command.h"

#include <stdlib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/key_ceremony.h"
#include "hsm/key_clone.h"
#include "hsm/key_labels.h"
#include "hsm/pin.h"
#include "hsm/self_test.h"
#include "hsm/softhsm_dev.h"
#include "server/data_dir_lock.h"

namespace bkv::server {

namespace {

constexpr absl::string_view kSoPinEnvVar = "BKV_HSM_SO_PIN";

absl::StatusOr<SecretBytes> ReadPin(const HsmFlags& flags,
                                    const std::string& pin_file) {
  if (!pin_file.empty()) return hsm::ReadPinFile(pin_file);
  absl::StatusOr<SecretBytes> pin = hsm::ReadPinFromEnv();
  if (!pin.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no PIN for token '", flags.token_label,
                     "': pass --pin-file FILE or set ", hsm::kPinEnvVar));
  }
  // Children and /proc/PID/environ readers need not see it.
  hsm::ScrubEnv(hsm::kPinEnvVar);
  return pin;
}

int Fail(std::ostream& err, absl::string_view what, const absl::Status& s) {
  err << "bkv-vault hsm " << what << ": " << s.message() << "\n";
  return 1;
}

void PrintPublicKey(std::ostream& out,
                    const hsm::AkeKeyPair::PublicKey& public_key) {
  out << "server public key (ristretto255): " << HexEncode(public_key) << "\n"
      << "server public key fingerprint (SHA-256): "
      << hsm::PublicKeyFingerprintHex(public_key) << "\n";
}

absl::Status SelfTest(std::shared_ptr<hsm::Pkcs11Hsm> token,
                      const std::string& data_dir = "") {
  BKV_ASSIGN_OR_RETURN(hsm::VaultKeys keys, hsm::VaultKeys::Load(token));
  BKV_RETURN_IF_ERROR(hsm::RunTokenSelfTests(*token, keys));
  if (data_dir.empty()) return absl::OkStatus();
  const std::string path = absl::StrCat(data_dir, "/", hsm::kKeyCheckFile);
  std::ifstream in(path);
  if (!in) return absl::OkStatus();  // serve writes it on first start
  std::stringstream text;
  text << in.rdbuf();
  return hsm::VerifyKeyCheck(keys, text.str(), token->Describe());
}

// With --softhsm-dir: makes the development token if it is missing.
bool PrepareDevToken(absl::string_view what, const HsmFlags& flags,
                     std::ostream& out, std::ostream& err) {
  if (flags.softhsm_dir.empty()) return true;
  absl::StatusOr<hsm::SoftHsmDevToken> dev = hsm::PrepareSoftHsmDir(
      flags.softhsm_dir, flags.token_label, flags.module_path);
  if (!dev.ok()) {
    Fail(err, what, dev.status());
    return false;
  }
  out << "SoftHSM development token '" << flags.token_label << "' "
      << (dev->token_created ? "created" : "found") << " under " << dev->dir
      << "\n  export SOFTHSM2_CONF=" << dev->conf_path
      << "\n  user PIN file: " << dev->user_pin_path
      << "\n  SO PIN file:   " << dev->so_pin_path << "\n";
  return true;
}

// --force-new-keys destroys what every record was sealed with: only with
// the vault's data directory named and not in use, and confirmed.
absl::StatusOr<std::optional<DataDirLock>> GuardNewKeys(const HsmFlags& flags,
                                                        std::ostream& err) {
  if (!flags.force_new_keys) return std::nullopt;
  if (flags.data_dir.empty()) {
    return absl::InvalidArgumentError(
        "--force-new-keys needs --data-dir DIR, the data directory of the "
        "vault that uses this token, so it can check no vault is running "
        "there");
  }
  BKV_ASSIGN_OR_RETURN(DataDirLock lock, DataDirLock::Acquire(flags.data_dir));
  if (flags.yes) return std::optional<DataDirLock>(std::move(lock));
  if (!isatty(STDIN_FILENO)) {
    return absl::InvalidArgumentError(
        "--force-new-keys destroys the keys every stored record was sealed "
        "with (those records become unreadable and clients must pin a new "
        "key): confirm on a terminal or add --yes");
  }
  err << "This destroys the keys on token '" << flags.token_label
      << "': every record sealed with them becomes unreadable for good.\n"
      << "Type the token label to go on: " << std::flush;
  std::string typed;
  std::getline(std::cin, typed);
  if (typed != flags.token_label) {
    return absl::CancelledError("not confirmed; nothing was changed");
  }
  return std::optional<DataDirLock>(std::move(lock));
}

int Init(const HsmFlags& flags, std::ostream& out, std::ostream& err) {
  if (!flags.force_new_keys && (!flags.data_dir.empty() || flags.yes)) {
    err << "bkv-vault hsm init: --data-dir and --yes go with --force-new-keys "
           "only\n";
    return kExitUsage;
  }
  auto guard = GuardNewKeys(flags, err);
  if (!guard.ok()) return Fail(err, "init", guard.status());
  if (!PrepareDevToken("init", flags, out, err)) return 1;
  absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> token = OpenHsm(flags);
  if (!token.ok()) return Fail(err, "init", token.status());
  hsm::CeremonyOptions options;
  options.force_new_keys = flags.force_new_keys;
  absl::StatusOr<hsm::CeremonyReport> report =
      hsm::RunKeyCeremony(**token, options);
  if (!report.ok()) return Fail(err, "init", report.status());
  out << "key ceremony on " << (*token)->Describe() << "\n";
  for (const auto& key : report->keys) {
    out << "  " << key.label << ": " << (key.created ? "created" : "kept")
        << "\n";
  }
  if (absl::Status s = SelfTest(*token); !s.ok()) return Fail(err, "init", s);
  out << "self-tests: passed\n";
  PrintPublicKey(out, report->ake_public_key);
  out << "Clients pin this fingerprint; it changes only with "
         "--force-new-keys.\n";
  return 0;
}

int Status(const HsmFlags& flags, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> token = OpenHsm(flags);
  if (!token.ok()) return Fail(err, "status", token.status());
  out << "token: " << (*token)->Describe() << " (logged in)\n";
  absl::StatusOr<hsm::KeyInventory> inventory = hsm::InspectKeys(**token);
  if (!inventory.ok()) return Fail(err, "status", inventory.status());
  for (const auto& e : inventory->entries) {
    out << "  " << e.label << ": " << (e.present ? "present" : "MISSING")
        << "\n";
  }
  if (absl::Status s = hsm::CheckInventory(*inventory, (*token)->Describe());
      !s.ok()) {
    return Fail(err, "status", s);
  }
  PrintPublicKey(out, *inventory->ake_public_key);
  if (absl::Status s = SelfTest(*token, flags.data_dir); !s.ok()) {
    return Fail(err, "status", s);
  }
  out << "self-tests: passed\n";
  return 0;
}

}  // namespace

namespace {

// With --softhsm-dir: points SOFTHSM2_CONF at DIR/softhsm2.conf and returns
// DIR (absolute); "" without it.
absl::StatusOr<std::string> UseSoftHsmDir(const HsmFlags& flags) {
  if (flags.softhsm_dir.empty()) return std::string();
  std::filesystem::path dir = std::filesystem::absolute(flags.softhsm_dir);
  std::string conf = (dir / "softhsm2.conf").string();
  if (!std::filesystem::exists(conf)) {
    return absl::NotFoundError(absl::StrCat(
        conf,
        " not found. A new vault: run `bkv-vault hsm init "
        "--softhsm-dir ",
        flags.softhsm_dir,
        "`. A vault with records: restore the token directory from its "
        "backup (docs/operations.md, \"Restoring the HSM token\")"));
  }
  setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  return dir.string();
}

hsm::TokenOptions TokenOptionsOf(const HsmFlags& flags) {
  hsm::TokenOptions options;
  options.module_path = flags.module_path;
  options.token_label = flags.token_label;
  options.max_sessions = flags.sessions;
  return options;
}

}  // namespace

absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenHsm(const HsmFlags& flags) {
  BKV_ASSIGN_OR_RETURN(std::string dir, UseSoftHsmDir(flags));
  std::string pin_file = flags.pin_file;
  if (!dir.empty() && pin_file.empty()) pin_file = dir + "/user.pin";
  BKV_ASSIGN_OR_RETURN(SecretBytes pin, ReadPin(flags, pin_file));
  return hsm::Pkcs11Hsm::Open(TokenOptionsOf(flags), pin);
}

namespace {

// The security officer's session for `hsm export`.
absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenSecurityOfficer(
    const HsmFlags& flags) {
  BKV_ASSIGN_OR_RETURN(std::string dir, UseSoftHsmDir(flags));
  std::string so_pin_file = flags.so_pin_file;
  if (!dir.empty() && so_pin_file.empty()) so_pin_file = dir + "/so.pin";
  absl::StatusOr<SecretBytes> so_pin = so_pin_file.empty()
                                           ? hsm::ReadPinFromEnv(kSoPinEnvVar)
                                           : hsm::ReadPinFile(so_pin_file);
  if (absl::IsNotFound(so_pin.status()) && so_pin_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the security officer must approve the transport key: pass "
        "--so-pin-file FILE or set ",
        kSoPinEnvVar));
  }
  BKV_RETURN_IF_ERROR(so_pin.status());
  hsm::ScrubEnv(kSoPinEnvVar);
  return hsm::Pkcs11Hsm::OpenAsSecurityOfficer(TokenOptionsOf(flags), *so_pin);
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path,
                                         absl::string_view flag) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " FILE is required"));
  }
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Written whole or not at all (temp file, then rename).
absl::Status WriteTextFile(const std::string& path, absl::string_view flag,
                           const std::string& text, mode_t mode) {
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " FILE is required"));
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) {
      return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
    }
  }
  std::error_code ec;
  std::filesystem::permissions(tmp, static_cast<std::filesystem::perms>(mode),
                               std::filesystem::perm_options::replace, ec);
  if (!ec) std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::UnavailableError(absl::StrCat(path, ": ", ec.message()));
  return absl::OkStatus();
}

int ExportRequest(const HsmFlags& flags, std::ostream& out, std::ostream& err) {
  if (!PrepareDevToken("export-request", flags, out, err)) return 1;
  absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> token = OpenHsm(flags);
  if (!token.ok()) return Fail(err, "export-request", token.status());
  absl::StatusOr<hsm::TransportPublicKey> key =
      hsm::CreateTransportKey(**token);
  absl::StatusOr<std::string> pem = key.ok() ? key->ToPem() : key.status();
  absl::StatusOr<std::string> fp = key.ok() ? key->FingerprintHex() : "";
  absl::Status s = pem.ok() ? fp.status() : pem.status();
  if (s.ok()) s = WriteTextFile(flags.out_path, "--out", *pem, 0644);
  if (!s.ok()) return Fail(err, "export-request", s);
  out << "transport key '" << hsm::kTransportKeyLabel << "' (RSA-"
      << hsm::kTransportKeyBits << ", unwrap only, never leaves the token) "
      << "created on " << (*token)->Describe() << "\n"
      << "public key written to " << flags.out_path << "\n"
      << "transport key fingerprint (SHA-256): " << *fp << "\n"
      << "Next, on a node whose token made the keys, compare this fingerprint "
         "over another channel and run:\n  bkv-vault hsm export --request "
      << flags.out_path << " --fingerprint " << *fp << " --out keys.export\n";
  return 0;
}

// The request file, checked against the fingerprint the operator compared.
absl::StatusOr<hsm::TransportPublicKey> ReadRequest(const HsmFlags& flags) {
  BKV_ASSIGN_OR_RETURN(std::string pem,
                       ReadTextFile(flags.request_path, "--request"));
  BKV_ASSIGN_OR_RETURN(hsm::TransportPublicKey key,
                       hsm::TransportPublicKey::FromPem(pem));
  BKV_ASSIGN_OR_RETURN(std::string fp, key.FingerprintHex());
  if (fp != flags.fingerprint) {
    return absl::PermissionDeniedError(absl::StrCat(
        "fingerprint mismatch: ", flags.request_path, " holds transport key ",
        fp, ", not ", flags.fingerprint,
        ". The file was altered or comes from another request: export "
        "nothing; run `hsm export-request` on the new node again"));
  }
  return key;
}

int Export(const HsmFlags& flags, std::ostream& out, std::ostream& err) {
  absl::StatusOr<hsm::TransportPublicKey> key = ReadRequest(flags);
  if (!key.ok()) return Fail(err, "export", key.status());
  {
    absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> so =
        OpenSecurityOfficer(flags);
    absl::Status s = so.ok() ? hsm::TrustTransportKey(**so, *key) : so.status();
    if (!s.ok()) return Fail(err, "export", s);
    out << "security officer: transport key " << flags.fingerprint
        << " marked trusted for wrapping on " << (*so)->Describe() << "\n";
  }  // SO logged out: the user logs in next
  absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> token = OpenHsm(flags);
  if (!token.ok()) return Fail(err, "export", token.status());
  absl::StatusOr<std::string> exported = hsm::ExportKeys(*token, *key);
  absl::Status s = exported.status();
  if (s.ok()) s = WriteTextFile(flags.out_path, "--out", *exported, 0600);
  if (!s.ok()) return Fail(err, "export", s);
  out << "the vault's keys wrapped (RSA-OAEP) under the transport key and "
         "written to "
      << flags.out_path << "; the trusted key was deleted again\n"
      << "Next, on the new node: bkv-vault hsm import --in " << flags.out_path
      << "\n";
  return 0;
}

int Import(const HsmFlags& flags, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::string> text = ReadTextFile(flags.in_path, "--in");
  if (!text.ok()) return Fail(err, "import", text.status());
  absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> token = OpenHsm(flags);
  if (!token.ok()) return Fail(err, "import", token.status());
  absl::StatusOr<hsm::ImportReport> report = hsm::ImportKeys(*token, *text);
  if (!report.ok()) return Fail(err, "import", report.status());
  out << "imported into " << (*token)->Describe()
      << " (sensitive, non-extractable; the transport key was deleted):\n";
  for (const std::string& label : report->labels) {
    out << "  " << label << "\n";
  }
  if (absl::Status s = SelfTest(*token); !s.ok()) return Fail(err, "import", s);
  out << "self-tests: passed\n";
  PrintPublicKey(out, report->ake_public_key);
  out << "This fingerprint must equal the source node's.\n";
  return 0;
}

}  // namespace

namespace {

using HsmRun = int (*)(const HsmFlags&, std::ostream&, std::ostream&);

// `hsm <name>` with the token flags every subcommand takes.
CLI::App* AddHsmCommand(VaultCli& cli, CLI::App& hsm,
                        std::shared_ptr<HsmFlags> f, const char* name,
                        const char* summary, const char* details, HsmRun run) {
  CLI::App* cmd = cli.Add(hsm, name, summary, details,
                          [f, run](Io io) { return run(*f, io.out, io.err); });
  cmd->option_defaults()->group("token flags");
  cli.Value(cmd, "--module", f->module_path, "PATH",
            "PKCS#11 module (default: SoftHSMv2's libsofthsm2.so)");
  cli.Value(cmd, "--token-label", f->token_label, "LABEL",
            "token label (default: bkv)");
  cli.Value(cmd, "--pin-file", f->pin_file, "FILE",
            "file holding the user PIN (mode 0600); without it the PIN is "
            "read from $BKV_HSM_PIN. PINs are never flags.");
  cli.Value(cmd, "--softhsm-dir", f->softhsm_dir, "DIR",
            "development token: init creates DIR/softhsm2.conf, a SoftHSM "
            "token under DIR/tokens and generated PINs in DIR/user.pin and "
            "DIR/so.pin (mode 0600); the others read them. Implies "
            "SOFTHSM2_CONF=DIR/softhsm2.conf.");
  cmd->option_defaults()->group("flags");
  return cmd;
}

void AddInit(VaultCli& cli, CLI::App& hsm) {
  auto f = std::make_shared<HsmFlags>();
  CLI::App* init = AddHsmCommand(
      cli, hsm, f, "init", "create (or keep) the vault's keys on the token",
      "Key ceremony: create the vault's keys on the token, or keep the ones "
      "already there, run the self-tests and print the server public key and "
      "its fingerprint (clients pin the fingerprint).",
      Init);
  cli.Switch(
      init, "--force-new-keys", f->force_new_keys,
      "destroy the existing bkv keys and make new ones. Every sealed record "
      "becomes unreadable and clients must pin the new public key. Needs "
      "--data-dir DIR (refused while a vault serves DIR) and a typed "
      "confirmation on a terminal, or --yes.");
  cli.Value(init, "--data-dir", f->data_dir, "DIR",
            "with --force-new-keys: the data directory of the vault that "
            "uses this token");
  cli.Switch(init, "--yes", f->yes, "confirm --force-new-keys without asking");
}

void AddCloning(VaultCli& cli, CLI::App& hsm) {
  auto request = std::make_shared<HsmFlags>();
  CLI::App* cmd = AddHsmCommand(
      cli, hsm, request, "export-request",
      "new node: a transport key for the keys",
      "On the NEW node (docs/operations.md, \"Adding a vault node\"): create "
      "its token (with --softhsm-dir) and an unwrap-only RSA-3072 transport "
      "key on it; write the public key to --out FILE and print its "
      "fingerprint.",
      ExportRequest);
  cli.Value(cmd, "--out", request->out_path, "FILE", "the file to write")
      ->required();
  auto f = std::make_shared<HsmFlags>();
  cmd = AddHsmCommand(
      cli, hsm, f, "export", "wrap the keys for a new node's transport key",
      "On a node whose token made the keys: with the security officer's PIN, "
      "mark the transport key in --request FILE trusted (it must have the "
      "--fingerprint HEX the new node printed), wrap the keys under it and "
      "write them to --out FILE. Keys leave a token only wrapped for the "
      "destination token.",
      Export);
  cli.Value(cmd, "--request", f->request_path, "FILE",
            "the transport key file from `hsm export-request`")
      ->required();
  cli.Value(cmd, "--fingerprint", f->fingerprint, "HEX",
            "the fingerprint `hsm export-request` printed on the new node, "
            "compared over another channel")
      ->required();
  cli.Value(cmd, "--out", f->out_path, "FILE", "the file to write")->required();
  cli.Value(cmd, "--so-pin-file", f->so_pin_file, "FILE",
            "file holding the security officer's PIN (mode 0600); without it "
            "$BKV_HSM_SO_PIN, or DIR/so.pin with --softhsm-dir");
  auto in = std::make_shared<HsmFlags>();
  cmd = AddHsmCommand(
      cli, hsm, in, "import", "new node: unwrap the keys into its token",
      "On the new node: unwrap --in FILE into its token as sensitive, "
      "non-extractable keys, check them and run the self-tests.",
      Import);
  cli.Value(cmd, "--in", in->in_path, "FILE", "the file `hsm export` wrote")
      ->required();
}

}  // namespace

void RegisterHsmCommands(VaultCli& cli) {
  CLI::App* hsm =
      cli.Add(cli.root(), "hsm", "key ceremony and token status", "", nullptr);
  AddInit(cli, *hsm);
  auto f = std::make_shared<HsmFlags>();
  CLI::App* status = AddHsmCommand(
      cli, *hsm, f, "status", "are the token and every key there? self-tests",
      "Shows whether the token and every key are present, the public key "
      "fingerprint, and runs the self-tests. With --data-dir, also checks "
      "the keys against the vault's key check file (DIR/hsm-keys.check), as "
      "`serve` does. Exit 1 if anything is missing or differs.",
      Status);
  cli.Value(status, "--data-dir", f->data_dir, "DIR",
            "the vault's data directory (its hsm-keys.check)");
  AddCloning(cli, *hsm);
}

}  // namespace bkv::server
