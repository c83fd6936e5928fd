#include "server/token_command.h"

#include <openssl/crypto.h>

#include <CLI/CLI.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "crypto/hex.h"
#include "crypto/secret_bytes.h"
#include "server/account_token.h"
#include "server/build_vault.h"
#include "server/config.h"

namespace bkv::server {

namespace {

struct TokenFlags {
  std::string sub, data_dir = VaultConfig().data_dir, key_file, kid = "dev",
                   audience = VaultConfig().audience, issuer;
  int64_t ttl_s = 3600;
};

int Mint(const TokenFlags& f, Io io) {
  std::string key_file = f.key_file;
  if (key_file.empty()) {
    VaultConfig c;
    c.data_dir = f.data_dir;
    key_file = c.DevIssuerKeyPath();
  }
  auto hex = ReadTextFile(key_file);
  if (!hex.ok()) {
    io.err << "bkv-vault token mint: " << hex.status().message()
           << " (start `bkv-vault serve` once to create the dev issuer)\n";
    return 1;
  }
  const absl::string_view stripped = absl::StripAsciiWhitespace(*hex);
  SecretBytes trimmed =
      SecretBytes::Copy(std::string_view(stripped.data(), stripped.size()));
  OPENSSL_cleanse(hex->data(), hex->size());
  auto key = HexDecode(trimmed.RevealAsString());
  if (!key.ok() || key->size() != 64) {
    io.err << "bkv-vault token mint: " << key_file
           << " must hold a 64-byte Ed25519 secret key in hex\n";
    return 1;
  }
  auto token = MintToken(SecretBytes::Copy(*key), f.kid, f.sub, f.audience,
                         f.issuer, absl::Now(), absl::Seconds(f.ttl_s));
  OPENSSL_cleanse(key->data(), key->size());
  if (!token.ok()) {
    io.err << "bkv-vault token mint: " << token.status().message() << "\n";
    return 1;
  }
  io.out << *token << "\n";
  return kExitOk;
}

}  // namespace

void RegisterTokenCommands(VaultCli& cli) {
  CLI::App* token =
      cli.Add(cli.root(), "token", "development account tokens", "", nullptr);
  auto f = std::make_shared<TokenFlags>();
  CLI::App* mint = cli.Add(
      *token, "mint", "mint a development account token",
      "Prints an account token signed with the development issuer key "
      "(development and tests; production tokens come from the messaging "
      "service).",
      [f](Io io) { return Mint(*f, io); });
  cli.Value(mint, "--sub", f->sub, "ACCOUNT", "the account id")->required();
  cli.Value(mint, "--data-dir", f->data_dir, "DIR",
            "the vault's data directory, for its dev issuer key (default "
            "./var/bkv)");
  cli.Value(mint, "--key-file", f->key_file, "FILE",
            "an Ed25519 secret key file (hex) instead, with --kid");
  cli.Value(mint, "--kid", f->kid, "KID",
            "key id in the token header (default dev)");
  cli.Value(mint, "--audience", f->audience, "AUD",
            "`aud` (default bkv-vault)");
  cli.Value(mint, "--issuer", f->issuer, "ISS", "`iss` (default none)");
  mint->add_option("--ttl-s", f->ttl_s, "lifetime in seconds (default 3600)")
      ->type_name("N")
      ->check(CLI::PositiveNumber);
}

}  // namespace bkv::server
