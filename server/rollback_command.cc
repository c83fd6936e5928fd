#include "server/rollback_command.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "crypto/status_macros.h"
#include "freshness/member_change.h"
#include "freshness/reanchor.h"
#include "hsm/endorsement_key.h"
#include "hsm/pin.h"
#include "hsm/pkcs11_hsm.h"
#include "hsm/softhsm_dev.h"
#include "server/build_vault.h"
#include "server/cluster_form.h"
#include "server/config.h"
#include "server/data_dir_lock.h"
#include "server/log.h"

namespace bkv::server {
namespace {

struct Flags {
  Flags() { reanchor.max_attempts = 0; }  // 0: reanchor_max_attempts
  std::string so_pin_file;
  std::string carry;          // quorum: the members' hand-overs
  std::string decision;       // quorum: where the signed table goes
  bool accept_fewer = false;  // quorum: hand-overs below the carry bound
  std::string shards = "all-stale";
  freshness::ReanchorOptions reanchor;
  ConfigArgs serve;
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

// One audit and log line per re-anchored shard.
absl::Status AuditReport(VaultNode& node,
                         const freshness::ReanchorReport& report) {
  for (const auto& s : report.shards) {
    const std::string shard = absl::StrCat("shard:", s.shard);
    // Budget review finding 9: the only lasting trace shows what is left.
    const std::string outcome =
        absl::StrCat("reanchored epoch=", s.epoch, " records=", s.records,
                     " left=", s.ceremonies_left);
    BKV_RETURN_IF_ERROR(node.audit->Record(
        {"rollback_reanchor", shard, outcome, static_cast<int64_t>(s.cap)}));
    Log("warn", "rollback_reanchor",
        {{"shard", absl::StrCat(s.shard)},
         {"epoch", absl::StrCat(s.epoch)},
         {"records", absl::StrCat(s.records)},
         {"max_attempts", absl::StrCat(s.cap)},
         {"ceremonies_left", absl::StrCat(s.ceremonies_left)}});
  }
  for (uint32_t s : report.kept_spent) {
    Log("warn", "rollback_reanchor_kept_spent", {{"shard", absl::StrCat(s)}});
  }
  return absl::OkStatus();
}

// The officer's --accept-fewer below the carry bound (cform review finding
// 1): one audit and log line naming the hand-overs it rests on.
// Written after the decision file (form3 review finding 3), with the most
// attempts any shard's records kept, not K.
absl::Status AuditAcceptFewer(VaultNode& node,
                              const std::vector<fresh::v1::HandOver>& hs,
                              const freshness::Carry& carry,
                              const freshness::ReanchorReport& report) {
  uint32_t cap = 0;
  for (const auto& s : report.shards) cap = std::max(cap, s.cap);
  std::vector<std::string> ids;
  for (const auto& h : hs) ids.push_back(absl::StrCat(h.node_id()));
  const std::string nodes = absl::StrCat("nodes:", absl::StrJoin(ids, ","));
  // The account field is keyed into a tag: the nodes go in the outcome.
  const std::string outcome = absl::StrCat(
      nodes, " hand_overs=", carry.hand_overs, " bound=", carry.bound,
      " base_seq=", carry.formed.base().seq(), " every_shard_reanchored");
  BKV_RETURN_IF_ERROR(node.audit->Record({"quorum_carry_accept_fewer", nodes,
                                          outcome, static_cast<int64_t>(cap)}));
  Log("warn", "quorum_carry_accept_fewer",
      {{"hand_overs", nodes},
       {"count", absl::StrCat(carry.hand_overs)},
       {"carry_bound", absl::StrCat(carry.bound)},
       {"max_attempts", absl::StrCat(cap)}});
  return absl::OkStatus();
}

// The quorum's re-anchor reads the carried head and writes its one table
// into the decision instead of a token.
class DecisionHeads final : public freshness::HeadStore {
 public:
  explicit DecisionHeads(std::optional<freshness::HeadTable> carried)
      : carried_(std::move(carried)) {}
  absl::StatusOr<std::optional<freshness::HeadTable>> Read() override {
    return carried_;
  }
  absl::Status Write(const freshness::HeadTable& t) override {
    written = t;
    return absl::OkStatus();
  }
  std::optional<freshness::HeadTable> written;

 private:
  const std::optional<freshness::HeadTable> carried_;
};

// The decision, signed with this member's endorsement key, into f.decision.
absl::Status WriteDecision(const Flags& f, VaultNode& node,
                           const QuorumSettings& q,
                           const freshness::Carry& carry,
                           const freshness::HeadTable& table) {
  fresh::v1::ReanchorDecision d;
  d.set_table(freshness::EncodeHeadsString(table));
  d.set_node_id(q.node_id);
  if (carry.formed.has_base()) {
    d.set_carried_digest(carry.formed.base().digest());
  }
  BKV_ASSIGN_OR_RETURN(auto key, hsm::EndorsementKey::Open(node.token));
  BKV_ASSIGN_OR_RETURN(auto sig, key->Sign(freshness::DecisionStatement(
                                     q.members.list_digest(), d)));
  d.set_signature(std::string(sig.begin(), sig.end()));
  return WriteSecretFile(f.decision, d.SerializeAsString());
}

// Across N tokens (docs/rollback.md "Re-anchor across N tokens"): over the
// newest certified table among a majority's hand-overs, never one token's.
absl::StatusOr<freshness::ReanchorReport> QuorumReanchor(const Flags& f,
                                                         const VaultConfig& c) {
  if (f.carry.empty() || f.decision.empty()) {
    return absl::FailedPreconditionError(
        "this node anchors through the endorsement quorum ([freshness] "
        "members_file): re-anchor with the members' hand-overs: `cluster "
        "form --export` on every member, `rollback reanchor --carry FILES "
        "--decision OUT` here, then `cluster form --carry FILES --decision "
        "OUT` on every member (docs/operations.md \"Re-anchoring a "
        "quorum\")");
  }
  // Form3 review finding 5: a RocksDB member that is not the owner reads an
  // empty store; its decision would empty every shard's root.
  if (!c.UsesEtcd() && !c.freshness_owner) {
    return absl::FailedPreconditionError(
        "this is not the node that holds the records (RocksDB without "
        "[freshness] owner): its store is empty and its decision would "
        "leave every shard stale; run `rollback reanchor --carry` on the "
        "owner");
  }
  BKV_RETURN_IF_ERROR(ProveSoPin(c, f.so_pin_file));
  // etcd has no RocksDB LOCK: no vault may serve this token meanwhile.
  BKV_ASSIGN_OR_RETURN(DataDirLock lock, DataDirLock::Acquire(c.data_dir));
  BKV_ASSIGN_OR_RETURN(QuorumSettings q, LoadQuorumSettings(c));
  BKV_ASSIGN_OR_RETURN(auto hand_overs, ReadHandOvers(f.carry));
  BKV_ASSIGN_OR_RETURN(
      freshness::Carry carry,
      freshness::DecideCarry(q.members, hand_overs, f.accept_fewer));
  std::optional<freshness::HeadTable> carried;
  if (carry.formed.has_base()) {
    BKV_ASSIGN_OR_RETURN(
        carried, freshness::ParseHeadsString(carry.formed.base_table()));
  }
  BKV_ASSIGN_OR_RETURN(std::unique_ptr<VaultNode> node, BuildVaultStorage(c));
  DecisionHeads heads(carried);
  freshness::ReanchorOptions options = f.reanchor;
  options.shards = static_cast<uint32_t>(c.freshness_shards);
  options.genesis = !carried;  // a quorum over a store with records
  options.ceremonies = static_cast<uint32_t>(c.freshness_reanchor_budget);
  options.cap_rolled_forward = true;
  if (carry.below_bound) {  // no record is proven fresh: every shard
    options.only.clear();
    for (uint32_t s = 0; s < options.shards; ++s) options.only.push_back(s);
  }
  BKV_ASSIGN_OR_RETURN(freshness::ReanchorReport report,
                       freshness::Reanchor(*node->store, heads, options));
  BKV_RETURN_IF_ERROR(WriteDecision(f, *node, q, carry, *heads.written));
  if (carry.below_bound) {
    BKV_RETURN_IF_ERROR(AuditAcceptFewer(*node, hand_overs, carry, report));
  }
  BKV_RETURN_IF_ERROR(AuditReport(*node, report));
  return report;
}

absl::StatusOr<freshness::ReanchorReport> Reanchor(const Flags& given,
                                                   const VaultConfig& c) {
  // A single node's genesis anchors a copy the officer knows is current;
  // every other re-anchor caps below the limit.
  Flags f = given;
  BKV_ASSIGN_OR_RETURN(
      f.reanchor.max_attempts,
      c.CeremonyMaxAttempts(given.reanchor.max_attempts,
                            c.UsesQuorum() || !given.reanchor.genesis));
  if (c.UsesQuorum()) return QuorumReanchor(f, c);
  if (!c.AnchorsRecords()) {
    return absl::FailedPreconditionError(
        "this configuration does not anchor records (etcd without "
        "freshness_single_node): nothing to re-anchor");
  }
  // Before the user login of BuildVaultStorage: one user type per process.
  BKV_RETURN_IF_ERROR(ProveSoPin(c, f.so_pin_file));
  // A vault serving from this data directory would write heads beside the
  // ceremony's (on etcd nothing else stops it here): its lock excludes it.
  BKV_ASSIGN_OR_RETURN(DataDirLock lock, DataDirLock::Acquire(c.data_dir));
  BKV_ASSIGN_OR_RETURN(std::unique_ptr<VaultNode> node, BuildVaultStorage(c));
  BKV_ASSIGN_OR_RETURN(auto heads,
                       freshness::TokenHeadStore::Open(node->token));
  freshness::ReanchorOptions options = f.reanchor;
  options.shards = static_cast<uint32_t>(c.freshness_shards);
  options.ceremonies = static_cast<uint32_t>(c.freshness_reanchor_budget);
  BKV_ASSIGN_OR_RETURN(freshness::ReanchorReport report,
                       freshness::Reanchor(*node->store, *heads, options));
  BKV_RETURN_IF_ERROR(AuditReport(*node, report));
  return report;
}

int RunReanchor(Flags& flags, std::ostream& out, std::ostream& err) {
  if (absl::Status s = ParseShards(flags.shards, flags.reanchor.only);
      !s.ok()) {
    err << "bkv-vault rollback reanchor: " << s.message() << "\n";
    return kExitUsage;
  }
  auto config = LoadParsedConfig(flags.serve);
  if (!config.ok()) {
    err << "bkv-vault rollback reanchor: " << config.status().message() << "\n";
    return kExitUsage;
  }
  auto report = Reanchor(flags, *config);
  if (!report.ok()) {
    err << "bkv-vault rollback reanchor: refused: " << report.status().message()
        << "\n";
    return kExitFailed;
  }
  if (report->shards.empty()) out << "no shard needed re-anchoring\n";
  for (const auto& s : report->shards) {
    out << "shard " << s.shard << ": re-anchored at epoch " << s.epoch << ", "
        << s.records << " records, each with at most " << s.cap
        << " attempts left; " << s.ceremonies_left
        << " re-anchors left in its life\n";
  }
  for (uint32_t s : report->kept_spent) {
    out << "shard " << s << ": proven, but its rolled-forward writes would "
        << "need a re-anchor and it has none left: kept as certified, no "
        << "attempt given; it reads stale (its accounts unavailable, nothing "
        << "lost) until you name it: --shards " << s << " --force (0 "
        << "attempts) or restore the store's latest state\n";
  }
  if (report->unreadable > 0) {
    out << report->unreadable
        << " records could not be opened and stay unreadable\n";
  }
  if (!flags.decision.empty()) {
    out << "head seq " << report->seq << " written to the decision "
        << flags.decision << "; on every member run `cluster form --carry "
        << flags.carry << " --decision " << flags.decision
        << "`, then start the vaults\n";
    return kExitOk;
  }
  out << "head seq " << report->seq << "; start the vault\n";
  return kExitOk;
}

}  // namespace

void RegisterRollbackCommands(VaultCli& cli) {
  CLI::App* rollback =
      cli.Add(cli.root(), "rollback",
              "recover from a restored (rolled back) store", "", nullptr);
  auto f = std::make_shared<Flags>();
  CLI::App* reanchor = cli.Add(
      *rollback, "reanchor", "re-anchor a restored store",
      "Re-anchors shards whose records cannot be proven fresh (a store "
      "restored from a backup), with the vault stopped. Every record of a "
      "re-anchored shard keeps at most K attempts, and the shard spends one "
      "of its B lifetime re-anchors ([freshness] reanchor_budget; --force "
      "when none are left gives 0 attempts); locked records stay locked; "
      "pending resets and registrations are dropped. Needs the "
      "token's security-officer PIN. The vault's settings are serve's "
      "(--config and its flags). docs/rollback.md says when.",
      [f](Io io) { return RunReanchor(*f, io.out, io.err); });
  cli.SoPinFile(reanchor, f->so_pin_file);
  reanchor
      ->add_option("--max-attempts", f->reanchor.max_attempts,
                   "K: the attempts each re-anchored record keeps at most "
                   "(default and most: [freshness] reanchor_max_attempts)")
      ->type_name("K");
  cli.Value(reanchor, "--shards", f->shards, "all-stale|N,M,...",
            "which shards (default all-stale)");
  cli.Switch(reanchor, "--accept-unreadable", f->reanchor.accept_unreadable,
             "re-anchor although some records cannot be opened (they stay "
             "unreadable)");
  cli.Switch(reanchor, "--force", f->reanchor.force,
             "re-anchor a shard with no re-anchor left in its life (cap 0: "
             "its accounts get no attempt)");
  cli.Switch(reanchor, "--genesis", f->reanchor.genesis,
             "anchor a store that has records but no heads on this token "
             "(first anchoring)");
  cli.Value(reanchor, "--carry", f->carry, "FILES",
            "quorum: every member's hand-over (`cluster form --export`), "
            "comma-separated");
  cli.Switch(reanchor, "--accept-fewer", f->accept_fewer,
             "quorum: fewer hand-overs than the carry bound N - q + 2 (a "
             "member lost with N = 3): every shard is re-anchored (audited). "
             "Each such ceremony spends one of every shard's B lifetime "
             "re-anchors ([freshness] reanchor_budget, default 4): 3 members "
             "pay it at every member lost for good; the way out is 5 "
             "members, not --force");
  cli.Value(reanchor, "--decision", f->decision, "OUT",
            "quorum: where the signed new table goes (for `cluster form "
            "--carry ... --decision OUT` on every member)");
  AddConfigFlags(*reanchor, f->serve);
}

}  // namespace bkv::server
