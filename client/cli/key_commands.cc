// bkv key new.
#include <CLI/CLI.hpp>

#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "client/cli/slot_command.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

absl::Status KeyNew(Context& c) {
  BackupKey key = BackupKey::Generate();
  SecretBytes text = key.Format();
  auto it = c.args.values.find("--out");
  if (it == c.args.values.end()) {
    if (c.args.json) {
      std::fprintf(c.out, "{\"key\":\"%.*s\"}\n", static_cast<int>(text.size()),
                   text.RevealAsString().data());
    } else {
      std::fprintf(c.out, "%.*s\n", static_cast<int>(text.size()),
                   text.RevealAsString().data());
    }
    return absl::OkStatus();
  }
  BKV_RETURN_IF_ERROR(WriteKeyFile(it->second, key));
  if (c.args.json) {
    std::fprintf(c.out, "{\"key_file\":%s}\n", JsonString(it->second).c_str());
  } else {
    std::fprintf(c.err,
                 "wrote a new backup key to %s (mode 0600); keep a copy "
                 "offline: without it the backups cannot be read\n",
                 it->second.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterKeyCommands(CommandTree& t) {
  CLI::App* key = t.Add(t.root(), "key", "backup keys", "", nullptr);
  CLI::App* n = t.Add(*key, "new", "make a backup key",
                      "Prints a new 64-digit key, or writes it to FILE "
                      "(mode 0600, must not exist).",
                      KeyNew);
  t.Value(n, "--out", "FILE", "write the key here instead of stdout");
}

}  // namespace bkv::cli
