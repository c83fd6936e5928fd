#include "client/cli/settings.h"

#include <toml++/toml.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace bkv::cli {
namespace {

struct Setting {
  const char* name;  // in the config file; nullptr: a secret, never there
  const char* flag;  // "": the store (--to or --from); nullptr: no flag
  const char* env;
  // Settings of one group come from one layer: the first that names any.
  const char* group;
};

// The one table of client settings (settings.h draws it).
constexpr Setting kSettings[] = {
    {"store", "", "BKV_STORE", "store"},
    {"key_file", "--key-file", "BKV_KEY_FILE", "key source"},
    {"vault", "--vault", "BKV_VAULT", "key source"},
    {"vault_key", "--vault-key", "BKV_VAULT_KEY", "vault_key"},
    {"account", "--account", "BKV_ACCOUNT", "account"},
    {"token_file", "--token-file", "BKV_TOKEN_FILE", "token"},
    // The token itself: read from the environment where it is used.
    {nullptr, nullptr, "BKV_ACCOUNT_TOKEN", "token"},
    {"vault_ca", "--vault-ca", "BKV_VAULT_CA", "vault_ca"},
};

constexpr const char* kSecrets[] = {"password", "key", "token",
                                    "account_token"};

// Setting (its env name, unique) -> value.
using Layer = std::map<std::string, std::string>;

std::string FlagOf(const Setting& s, const std::string& command) {
  if (*s.flag != '\0') return s.flag;
  return command == "backup" ? "--to" : "--from";
}

std::string DefaultConfigPath(const EnvFn& env) {
  if (auto d = env("XDG_CONFIG_HOME")) return *d + "/bkv/config.toml";
  if (auto h = env("HOME")) return *h + "/.config/bkv/config.toml";
  return "";
}

// "~/x" as the shell would expand it.
std::string Expanded(const std::string& v, const EnvFn& env) {
  if (v.rfind("~/", 0) != 0) return v;
  auto home = env("HOME");
  return home ? *home + v.substr(1) : v;
}

absl::Status ConfigError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config file ", path, ": ", what));
}

absl::StatusOr<Layer> ReadConfig(const std::string& path, bool named,
                                 const EnvFn& env) {
  std::error_code ec;
  if (path.empty()) return Layer{};
  if (!std::filesystem::exists(path, ec)) {
    if (!named) return Layer{};
    return ConfigError(path, "does not exist");
  }
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return ConfigError(path, std::string(e.description()));
  }
  Layer layer;
  for (const auto& [key, node] : root) {
    const std::string k(key.str());
    for (const char* secret : kSecrets) {
      if (k == secret) {
        return ConfigError(path, "'" + k +
                                     "' is a secret, and secrets never "
                                     "come from the config file; name a file "
                                     "(key_file, token_file) or use the "
                                     "password prompt");
      }
    }
    const Setting* setting = nullptr;
    for (const Setting& s : kSettings) {
      if (s.name != nullptr && k == s.name) setting = &s;
    }
    if (setting == nullptr) {
      return ConfigError(path, "unknown setting '" + k + "'");
    }
    auto value = node.value<std::string>();
    if (!value) return ConfigError(path, "'" + k + "' must be a string");
    layer[setting->env] = Expanded(*value, env);
  }
  return layer;
}

Layer FromEnv(const EnvFn& env) {
  Layer layer;
  for (const Setting& s : kSettings) {
    if (auto v = env(s.env)) layer[s.env] = *v;
  }
  return layer;
}

Layer FromFlags(const std::map<std::string, std::string>& flags,
                const std::string& command) {
  Layer layer;
  for (const Setting& s : kSettings) {
    if (s.flag == nullptr) continue;
    if (auto it = flags.find(FlagOf(s, command)); it != flags.end()) {
      layer[s.env] = it->second;
    }
  }
  return layer;
}

}  // namespace

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

absl::Status ApplySettings(std::map<std::string, std::string>& flags,
                           const std::string& command,
                           const std::string& config_file, const EnvFn& env) {
  const std::string path =
      config_file.empty() ? DefaultConfigPath(env) : config_file;
  auto config = ReadConfig(path, !config_file.empty(), env);
  if (!config.ok()) return config.status();
  const std::vector<Layer> layers = {FromFlags(flags, command), FromEnv(env),
                                     *config};
  std::set<std::string> chosen;  // groups a higher layer named
  for (const Layer& layer : layers) {
    std::set<std::string> named;
    for (const Setting& s : kSettings) {
      auto it = layer.find(s.env);
      if (it == layer.end() || chosen.count(s.group)) continue;
      named.insert(s.group);
      if (s.flag != nullptr) flags.emplace(FlagOf(s, command), it->second);
    }
    chosen.insert(named.begin(), named.end());
  }
  return absl::OkStatus();
}

}  // namespace bkv::cli
