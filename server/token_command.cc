#include "server/token_command.h"

#include <openssl/crypto.h>

#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "crypto/hex.h"
#include "crypto/secret_bytes.h"
#include "server/account_token.h"
#include "server/build_vault.h"
#include "server/config.h"

namespace bkv::server {

constexpr char kTokenUsage[] =
    R"(usage: bkv-vault token <mint> [flags]

  mint     Print an account token signed with the development issuer key
           (development and tests; production tokens come from the
           messaging service).

mint flags:
  --sub ACCOUNT        the account id (required)
  --data-dir D         the vault's data directory, for its dev issuer key
                       (default ./var/bkv)
  --key-file F         an Ed25519 secret key file (hex) instead, with --kid K
  --kid K              key id in the token header (default dev)
  --audience A         `aud` (default bkv-vault)
  --issuer I           `iss` (default none)
  --ttl-s N            lifetime in seconds (default 3600)
)";

int RunTokenCommand(std::span<const std::string> args) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h" || a == "help") {
      std::cout << kTokenUsage;
      return 0;
    }
  }
  if (args.empty() || args[0] != "mint") {
    std::cerr << kTokenUsage;
    return 2;
  }
  VaultConfig defaults;
  std::string sub, data_dir = defaults.data_dir, key_file, kid = "dev",
                   audience = defaults.audience, issuer;
  int64_t ttl_s = 3600;
  for (size_t i = 1; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      return i + 1 < args.size() ? args[++i] : std::string();
    };
    const std::string& a = args[i];
    if (a == "--sub")
      sub = value();
    else if (a == "--data-dir")
      data_dir = value();
    else if (a == "--key-file")
      key_file = value();
    else if (a == "--kid")
      kid = value();
    else if (a == "--audience")
      audience = value();
    else if (a == "--issuer")
      issuer = value();
    else if (a == "--ttl-s") {
      if (!absl::SimpleAtoi(value(), &ttl_s) || ttl_s <= 0) {
        std::cerr << "bkv-vault token mint: --ttl-s wants a positive integer\n";
        return 2;
      }
    } else {
      std::cerr << "bkv-vault token mint: unknown flag " << a << "\n";
      return 2;
    }
  }
  if (sub.empty()) {
    std::cerr << "bkv-vault token mint: --sub ACCOUNT is required\n";
    return 2;
  }
  if (key_file.empty()) {
    VaultConfig c;
    c.data_dir = data_dir;
    key_file = c.DevIssuerKeyPath();
  }
  auto hex = ReadTextFile(key_file);
  if (!hex.ok()) {
    std::cerr << "bkv-vault token mint: " << hex.status().message()
              << " (start `bkv-vault serve` once to create the dev issuer)\n";
    return 1;
  }
  const absl::string_view stripped = absl::StripAsciiWhitespace(*hex);
  SecretBytes trimmed =
      SecretBytes::Copy(std::string_view(stripped.data(), stripped.size()));
  OPENSSL_cleanse(hex->data(), hex->size());
  auto key = HexDecode(trimmed.RevealAsString());
  if (!key.ok() || key->size() != 64) {
    std::cerr << "bkv-vault token mint: " << key_file
              << " must hold a 64-byte Ed25519 secret key in hex\n";
    return 1;
  }
  auto token = MintToken(SecretBytes::Copy(*key), kid, sub, audience, issuer,
                         absl::Now(), absl::Seconds(ttl_s));
  OPENSSL_cleanse(key->data(), key->size());
  if (!token.ok()) {
    std::cerr << "bkv-vault token mint: " << token.status().message() << "\n";
    return 1;
  }
  std::cout << *token << "\n";
  return 0;
}

}  // namespace bkv::server
