#include "server/hsm_command.h"

#include <stdlib.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/key_ceremony.h"
#include "hsm/pin.h"
#include "hsm/self_test.h"
#include "hsm/softhsm_dev.h"

namespace bkv::server {

const char kHsmUsage[] =
    R"(usage: bkv-vault hsm <init|status> [flags]

  init     Key ceremony: create the vault's keys on the token, or keep the
           ones already there, run the self-tests and print the server
           public key and its fingerprint (clients pin the fingerprint).
  status   Show whether the token and every key are present, the public key
           fingerprint, and run the self-tests. Exit 1 if anything is missing.

Token flags:
  --module PATH        PKCS#11 module (default: SoftHSMv2's libsofthsm2.so)
  --token-label L      token label (default: bkv)
  --pin-file F         file holding the user PIN (mode 0600); without it the
                       PIN is read from $BKV_HSM_PIN. PINs are never flags.
  --softhsm-dir DIR    development token: init creates DIR/softhsm2.conf, a
                       SoftHSM token under DIR/tokens and generated PINs in
                       DIR/user.pin and DIR/so.pin (mode 0600); status reads
                       them. Implies SOFTHSM2_CONF=DIR/softhsm2.conf.
init only:
  --force-new-keys     destroy the existing bkv keys and make new ones. Every
                       sealed record becomes unreadable and clients must pin
                       the new public key.
)";

namespace {

bool TakesValue(const std::string& flag) {
  return flag == "--module" || flag == "--token-label" ||
         flag == "--pin-file" || flag == "--softhsm-dir";
}

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

absl::Status SelfTest(std::shared_ptr<hsm::Pkcs11Hsm> token) {
  BKV_ASSIGN_OR_RETURN(hsm::VaultKeys keys, hsm::VaultKeys::Load(token));
  return hsm::RunTokenSelfTests(*token, keys);
}

int Init(const HsmFlags& flags, std::ostream& out, std::ostream& err) {
  if (!flags.softhsm_dir.empty()) {
    absl::StatusOr<hsm::SoftHsmDevToken> dev = hsm::PrepareSoftHsmDir(
        flags.softhsm_dir, flags.token_label, flags.module_path);
    if (!dev.ok()) return Fail(err, "init", dev.status());
    out << "SoftHSM development token '" << flags.token_label << "' "
        << (dev->token_created ? "created" : "found") << " under " << dev->dir
        << "\n  export SOFTHSM2_CONF=" << dev->conf_path
        << "\n  user PIN file: " << dev->user_pin_path
        << "\n  SO PIN file:   " << dev->so_pin_path << "\n";
  }
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
  if (absl::Status s = SelfTest(*token); !s.ok()) {
    return Fail(err, "status", s);
  }
  out << "self-tests: passed\n";
  return 0;
}

}  // namespace

absl::Status ParseHsmFlags(std::span<const std::string> args, HsmFlags& flags,
                           std::vector<std::string>& rest) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    bool has_value = false;
    if (size_t eq = flag.find('=');
        flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
      has_value = true;
    }
    if (flag == "--pin" || flag == "--so-pin" || flag == "--user-pin") {
      // Deliberately not echoing the value.
      return absl::InvalidArgumentError(absl::StrCat(
          flag,
          " is not accepted: PINs never go on the command line; use "
          "--pin-file FILE or ",
          hsm::kPinEnvVar));
    }
    if (TakesValue(flag)) {
      if (!has_value) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat(flag, " needs a value"));
        }
        value = args[++i];
      }
      if (flag == "--module") flags.module_path = value;
      if (flag == "--token-label") flags.token_label = value;
      if (flag == "--pin-file") flags.pin_file = value;
      if (flag == "--softhsm-dir") flags.softhsm_dir = value;
    } else if (flag == "--force-new-keys" && !has_value) {
      flags.force_new_keys = true;
    } else {
      rest.push_back(args[i]);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenHsm(const HsmFlags& flags) {
  std::string pin_file = flags.pin_file;
  if (!flags.softhsm_dir.empty()) {
    std::filesystem::path dir = std::filesystem::absolute(flags.softhsm_dir);
    std::string conf = (dir / "softhsm2.conf").string();
    if (!std::filesystem::exists(conf)) {
      return absl::NotFoundError(absl::StrCat(
          conf, " not found; run `bkv-vault hsm init --softhsm-dir ",
          flags.softhsm_dir, "`"));
    }
    setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    if (pin_file.empty()) pin_file = (dir / "user.pin").string();
  }
  BKV_ASSIGN_OR_RETURN(SecretBytes pin, ReadPin(flags, pin_file));
  hsm::TokenOptions options;
  options.module_path = flags.module_path;
  options.token_label = flags.token_label;
  options.max_sessions = flags.sessions;
  return hsm::Pkcs11Hsm::Open(options, pin);
}

int RunHsmCommand(std::span<const std::string> args, std::ostream& out,
                  std::ostream& err) {
  HsmFlags flags;
  std::vector<std::string> rest;
  if (absl::Status s = ParseHsmFlags(args, flags, rest); !s.ok()) {
    err << "bkv-vault hsm: " << s.message() << "\n";
    return 2;
  }
  for (const std::string& a : rest) {
    if (a == "--help" || a == "-h" || a == "help") {
      out << kHsmUsage;
      return 0;
    }
  }
  if (rest.size() != 1 || (rest[0] != "init" && rest[0] != "status")) {
    err << (rest.empty() ? "bkv-vault hsm: missing subcommand\n"
                         : absl::StrCat("bkv-vault hsm: unexpected '",
                                        absl::StrJoin(rest, " "), "'\n"))
        << kHsmUsage;
    return 2;
  }
  if (rest[0] == "status" && flags.force_new_keys) {
    err << "bkv-vault hsm status: --force-new-keys is for init only\n";
    return 2;
  }
  return rest[0] == "init" ? Init(flags, out, err) : Status(flags, out, err);
}

}  // namespace bkv::server
