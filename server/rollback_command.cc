#include "server/rollback_command.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "crypto/status_macros.h"
#include "freshness/reanchor.h"
#include "hsm/pin.h"
#include "hsm/pkcs11_hsm.h"
#include "hsm/softhsm_dev.h"
#include "server/build_vault.h"
#include "server/config.h"
#include "server/log.h"

namespace bkv::server {
namespace {

constexpr char kUsage[] =
    "usage: bkv-vault rollback reanchor --so-pin-file FILE [--max-attempts K]\n"
    "         [--shards all-stale|N,M,...] [--accept-unreadable] [--force]\n"
    "         [--genesis]\n"
    "         [serve flags: --config, --data-dir, ...]\n"
    "Re-anchors shards whose records cannot be proven fresh (a store restored\n"
    "from a backup), with the vault stopped. Every record of a re-anchored\n"
    "shard keeps at most K attempts (default 2; one fewer at each later\n"
    "re-anchor of the shard, --force when none are left); locked records\n"
    "stay locked; pending resets and registrations are dropped. Unreadable\n"
    "records refuse unless --accept-unreadable. --genesis anchors a store\n"
    "that has records for a token that has no heads (first anchoring).\n"
    "Needs the token's security-officer PIN. docs/operations.md says when.\n";

struct Flags {
  std::string so_pin_file;
  freshness::ReanchorOptions reanchor;
  std::vector<std::string> serve_args;
};

absl::Status ParseShards(absl::string_view v, std::vector<uint32_t>& out) {
  if (v == "all-stale") return absl::OkStatus();
  for (absl::string_view part : absl::StrSplit(v, ',')) {
    uint32_t s = 0;
    if (!absl::SimpleAtoi(part, &s)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shards: expected all-stale or N,M,..., got ", v));
    }
    out.push_back(s);
  }
  return absl::OkStatus();
}

absl::StatusOr<Flags> ParseFlags(std::span<const std::string> args) {
  Flags f;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    if (flag == "--accept-unreadable") {
      f.reanchor.accept_unreadable = true;
      continue;
    }
    if (flag == "--force" || flag == "--genesis") {
      (flag == "--force" ? f.reanchor.force : f.reanchor.genesis) = true;
      continue;
    }
    const size_t eq = flag.find('=');
    const bool ours = flag.rfind("--so-pin-file", 0) == 0 ||
                      flag.rfind("--max-attempts", 0) == 0 ||
                      flag.rfind("--shards", 0) == 0;
    if (!ours) {
      f.serve_args.push_back(flag);
      continue;
    }
    if (eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
    }
    if (flag == "--so-pin-file") {
      f.so_pin_file = value;
    } else if (flag == "--max-attempts") {
      if (!absl::SimpleAtoi(value, &f.reanchor.max_attempts)) {
        return absl::InvalidArgumentError("--max-attempts: expected a number");
      }
    } else {
      BKV_RETURN_IF_ERROR(ParseShards(value, f.reanchor.only));
    }
  }
  if (f.so_pin_file.empty()) {
    return absl::PermissionDeniedError(
        "re-anchoring needs the security officer: pass --so-pin-file FILE "
        "(the token's SO PIN, mode 0600)");
  }
  return f;
}

// The module and label the vault would log in to; the development token is
// located the way `serve` finds it.
absl::StatusOr<std::string> ModulePath(const VaultConfig& c) {
  const bool dev = !hsm::PinConfigured(c.hsm_pin_file);
  if (dev) {
    BKV_ASSIGN_OR_RETURN(
        hsm::SoftHsmDevToken t,
        hsm::PrepareSoftHsmDir(c.SoftHsmDir(), c.hsm_token_label, c.hsm_module,
                               /*allow_create=*/false));
    return t.module_path;
  }
  if (!c.hsm_module.empty()) return c.hsm_module;
  return hsm::LocateSoftHsmModule();
}

absl::StatusOr<freshness::ReanchorReport> Reanchor(const Flags& f,
                                                   const VaultConfig& c) {
  if (c.UsesQuorum()) {
    return absl::FailedPreconditionError(
        "this node anchors through the endorsement quorum ([freshness] "
        "members_file); the re-anchor ceremony across its tokens is not "
        "built yet (docs/rollback.md \"Re-anchor across N tokens\"): the "
        "restored store stays refused; restore the latest copy instead");
  }
  if (!c.AnchorsRecords()) {
    return absl::FailedPreconditionError(
        "this configuration does not anchor records (etcd without "
        "freshness_single_node): nothing to re-anchor");
  }
  BKV_ASSIGN_OR_RETURN(SecretBytes so_pin, hsm::ReadPinFile(f.so_pin_file));
  BKV_ASSIGN_OR_RETURN(std::string module, ModulePath(c));
  // Before the user login of BuildVaultStorage: one user type per process.
  BKV_RETURN_IF_ERROR(
      hsm::Pkcs11Hsm::VerifySoPin(module, c.hsm_token_label, so_pin));
  BKV_ASSIGN_OR_RETURN(std::unique_ptr<VaultNode> node, BuildVaultStorage(c));
  BKV_ASSIGN_OR_RETURN(auto heads,
                       freshness::TokenHeadStore::Open(node->token));
  freshness::ReanchorOptions options = f.reanchor;
  options.shards = static_cast<uint32_t>(c.freshness_shards);
  BKV_ASSIGN_OR_RETURN(freshness::ReanchorReport report,
                       freshness::Reanchor(*node->store, *heads, options));
  for (const auto& s : report.shards) {
    const std::string shard = absl::StrCat("shard:", s.shard);
    const std::string outcome =
        absl::StrCat("reanchored epoch=", s.epoch, " records=", s.records);
    BKV_RETURN_IF_ERROR(node->audit->Record(
        {"rollback_reanchor", shard, outcome, static_cast<int64_t>(s.cap)}));
    Log("warn", "rollback_reanchor",
        {{"shard", absl::StrCat(s.shard)},
         {"epoch", absl::StrCat(s.epoch)},
         {"records", absl::StrCat(s.records)},
         {"max_attempts", absl::StrCat(s.cap)}});
  }
  return report;
}

}  // namespace

int RunRollbackCommand(std::span<const std::string> args, std::ostream& out,
                       std::ostream& err) {
  const bool help = std::any_of(args.begin(), args.end(), [](const auto& a) {
    return a == "--help" || a == "-h";
  });
  if (args.empty() || help) {
    (help ? out : err) << kUsage;
    return help ? 0 : 2;
  }
  if (args[0] != "reanchor") {
    err << "bkv-vault rollback: unknown subcommand '" << args[0] << "'\n"
        << kUsage;
    return 2;
  }
  auto flags = ParseFlags(args.subspan(1));
  if (!flags.ok()) {
    err << "bkv-vault rollback reanchor: " << flags.status().message() << "\n";
    return 2;
  }
  auto config = LoadConfig(flags->serve_args);
  if (!config.ok()) {
    err << "bkv-vault rollback reanchor: " << config.status().message() << "\n";
    return 2;
  }
  auto report = Reanchor(*flags, *config);
  if (!report.ok()) {
    err << "bkv-vault rollback reanchor: refused: " << report.status().message()
        << "\n";
    return 1;
  }
  if (report->shards.empty()) out << "no shard needed re-anchoring\n";
  for (const auto& s : report->shards) {
    out << "shard " << s.shard << ": re-anchored at epoch " << s.epoch << ", "
        << s.records << " records, each with at most " << s.cap
        << " attempts left\n";
  }
  if (report->unreadable > 0) {
    out << report->unreadable
        << " records could not be opened and stay unreadable\n";
  }
  out << "head seq " << report->seq << "; start the vault\n";
  return 0;
}

}  // namespace bkv::server
