// bkv list: what a store holds.
#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "client/backup_set.h"
#include "client/cli/command.h"
#include "client/cli/command_tree.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

absl::Status List(Context& c) {
  BKV_ASSIGN_OR_RETURN(auto store, Store(c, "--from"));
  if (!c.args.values.count("--key-file") && !c.args.values.count("--vault") &&
      !c.args.values.count("--realms")) {
    BKV_ASSIGN_OR_RETURN(auto objects, store->List());
    std::string json = "{\"objects\":[";
    for (size_t i = 0; i < objects.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "",
                      "{\"name\":", JsonString(objects[i].name),
                      ",\"size\":", objects[i].size, "}");
      if (!c.args.json) {
        std::fprintf(c.out, "%12llu  %s\n",
                     static_cast<unsigned long long>(objects[i].size),
                     objects[i].name.c_str());
      }
    }
    if (c.args.json) std::fprintf(c.out, "%s]}\n", json.c_str());
    return absl::OkStatus();
  }
  BKV_ASSIGN_OR_RETURN(BackupKey key, LoadKey(c.args, c.err, *store));
  BackupSet set(*store, key);
  BKV_ASSIGN_OR_RETURN(auto records, set.List());
  std::string json = "{\"backups\":[";
  for (size_t i = 0; i < records.size(); ++i) {
    const BackupRecord& r = records[i];
    const char* kind = r.content == BackupContent::kTree ? "tree" : "file";
    absl::StrAppend(&json, i ? "," : "", "{\"id\":\"", r.id,
                    "\",\"object\":", JsonString(r.object),
                    ",\"created\":", r.created_unix, ",\"content\":\"", kind,
                    "\",\"input_bytes\":", r.input_bytes,
                    ",\"stored_bytes\":", r.stored_bytes, "}");
    if (!c.args.json) {
      std::fprintf(c.out, "%s  %s  %-4s  %s\n", r.id.c_str(), r.object.c_str(),
                   kind, Human(r.input_bytes).c_str());
    }
  }
  if (c.args.json) std::fprintf(c.out, "%s]}\n", json.c_str());
  return absl::OkStatus();
}

}  // namespace

void RegisterStoreCommands(CommandTree& t) {
  CLI::App* l =
      t.Add(t.root(), "list", "the store's objects, or the backups of a v1 set",
            "Without a key: the store's objects and their sizes. With one: the "
            "backups of a single-stream (v1) set.",
            List);
  t.Value(l, "--from", "URL", "the store (or $BKV_STORE)");
  t.KeyFlags(l);
}

}  // namespace bkv::cli
