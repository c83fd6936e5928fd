#ifndef BKV_CLIENT_CLI_SETTINGS_H_
#define BKV_CLIENT_CLI_SETTINGS_H_

// Where `bkv` takes each client setting from, highest first: the command
// line, then the environment, then a TOML config file (--config FILE, else
// $XDG_CONFIG_HOME/bkv/config.toml, else ~/.config/bkv/config.toml; a
// missing default file is no error). docs/operations.md, "Client settings".
//
//   setting      flag            environment     config file
//   store        --to / --from   BKV_STORE       store = "URL"
//   key file     --key-file      BKV_KEY_FILE    key_file = "PATH"
//   vault        --vault         BKV_VAULT       vault = "ADDR[,ADDR...]"
//   vault key    --vault-key     BKV_VAULT_KEY   vault_key = "HEX"
//   account      --account       BKV_ACCOUNT     account = "ID"
//   token file   --token-file    BKV_TOKEN_FILE  token_file = "PATH"
//   vault CA     --vault-ca      BKV_VAULT_CA    vault_ca = "PATH"
//
// The store is --to for `bkv backup` and --from for every other command.
// The key's source (--key-file or --vault) comes from the first layer that
// names one, so a key file on the command line is never overridden by a
// vault from the environment. Secrets never come from the config file: a
// `password`, `key` or `token` setting there is refused (the account token
// itself may come from $BKV_ACCOUNT_TOKEN, read where it is used).

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace bkv::cli {

// Reads an environment variable (nullopt when unset or empty).
using EnvFn = std::function<std::optional<std::string>(const std::string&)>;

// The process environment.
std::optional<std::string> ProcessEnv(const std::string& name);

// Fills `flags` (flag -> value, as parsed from the command line) with the
// settings the command line left out. `command` is the first word (e.g.
// "backup"); `config_file` is --config's value, or empty. InvalidArgument
// for a config file that cannot be read or parsed, has an unknown setting or
// a secret, or for a --config FILE that does not exist.
absl::Status ApplySettings(std::map<std::string, std::string>& flags,
                           const std::string& command,
                           const std::string& config_file, const EnvFn& env);

}  // namespace bkv::cli

#endif  // BKV_CLIENT_CLI_SETTINGS_H_
