#include "server/cluster_command.h"

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "freshness/endorsement.h"
#include "freshness/endorser_recovery.h"
#include "hsm/ake_key_pair.h"
#include "hsm/anchored_object.h"
#include "hsm/endorsement_key.h"
#include "hsm/key_labels.h"
#include "hsm/pin.h"
#include "server/build_vault.h"
#include "server/cluster_form.h"
#include "server/config.h"
#include "server/data_dir_lock.h"
#include "server/log.h"
#include "server/quorum_config.h"
#include "server/quorum_node.h"

namespace bkv::server {
namespace {

void PrintKey(const VaultConfig& c, const hsm::EndorsementKey& key,
              std::ostream& out) {
  out << "endorsement public key: " << HexEncode(key.public_key()) << "\n"
      << "fingerprint (SHA-256):  "
      << hsm::PublicKeyFingerprintHex(key.public_key()) << "\n";
  if (c.freshness_node_id > 0) {
    out << "members line:           "
        << MemberLine(static_cast<uint32_t>(c.freshness_node_id),
                      key.public_key(), c.freshness_peer_listen)
        << "\n";
  }
}

absl::Status KeyGen(const VaultConfig& c, bool create, std::ostream& out) {
  BKV_ASSIGN_OR_RETURN(std::shared_ptr<hsm::Pkcs11Hsm> token, OpenNodeToken(c));
  auto key = create ? hsm::EndorsementKey::Generate(token)
                    : hsm::EndorsementKey::Open(token);
  if (create && absl::IsAlreadyExists(key.status())) {
    out << "this token already has its endorsement key (kept)\n";
    key = hsm::EndorsementKey::Open(token);
  } else if (create && key.ok()) {
    // Genesis of the endorser's state, with its key and only then: a key
    // without a state later means the state was lost (finding 1(c)).
    BKV_RETURN_IF_ERROR(freshness::Endorser::CreateState(token));
    out << "endorsement key and endorser state created in the token\n";
  }
  BKV_RETURN_IF_ERROR(key.status());
  PrintKey(c, **key, out);
  return absl::OkStatus();
}

absl::Status Digest(const VaultConfig& c, std::ostream& out) {
  if (!c.UsesQuorum()) {
    return absl::InvalidArgumentError(
        "set [freshness] members_file and node_id (or --freshness-members-file "
        "and --freshness-node-id)");
  }
  BKV_ASSIGN_OR_RETURN(QuorumSettings q, LoadQuorumSettings(c));
  BKV_ASSIGN_OR_RETURN(std::shared_ptr<hsm::Pkcs11Hsm> token, OpenNodeToken(c));
  // Before `cluster form` the file's digest is compared (cform review 10).
  BKV_ASSIGN_OR_RETURN(auto formed, ReadFormed(token));
  if (formed) BKV_RETURN_IF_ERROR(UseFormedMembers(token, q));
  if (!formed) out << "not formed yet: the members file's digest\n";
  BKV_ASSIGN_OR_RETURN(auto key, hsm::EndorsementKey::Open(token));
  if (q.members.Find(q.node_id)->key != key->public_key()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the members file's key for node ", q.node_id,
        " is not this token's endorsement key (", HexEncode(key->public_key()),
        "): wrong node_id, or the file"));
  }
  out << "members: " << q.members.all().size() << " (majority "
      << q.members.quorum() << "), this node " << q.node_id << "\n"
      << "members digest: " << HexEncode(q.members.digest()) << "\n";
  return absl::OkStatus();
}

// The security officer's way back for a token whose endorser state is gone:
// an empty state, which the node's recovery round brings up to date
// (docs/rollback.md "Endorser recovery round").
absl::Status ResetState(const VaultConfig& c, const std::string& so_pin_file,
                        std::ostream& out) {
  BKV_RETURN_IF_ERROR(ProveSoPin(c, so_pin_file));
  // Review of branch slots, finding 4: no vault writes this token's
  // endorser state meanwhile (the slots do not fence a racing writer).
  BKV_ASSIGN_OR_RETURN(DataDirLock lock, DataDirLock::Acquire(c.data_dir));
  BKV_ASSIGN_OR_RETURN(std::shared_ptr<hsm::Pkcs11Hsm> token, OpenNodeToken(c));
  BKV_RETURN_IF_ERROR(hsm::EndorsementKey::Open(token).status());
  BKV_ASSIGN_OR_RETURN(bool destroyed,
                       DestroyBrokenObject(
                           token, hsm::kEndorsedLabel, hsm::kEndorsedMacLabel,
                           [](std::span<const uint8_t> b) {
                             return fresh::v1::EndorserState().ParseFromArray(
                                 b.data(), static_cast<int>(b.size()));
                           },
                           "cluster_reset_state_destroying"));
  if (destroyed) out << "the unreadable endorser state was destroyed\n";
  absl::Status s = freshness::Endorser::CreateState(token);
  if (absl::IsAlreadyExists(s)) {
    return absl::FailedPreconditionError(
        "this token holds its endorser state: nothing to reset (an old state "
        "is brought up to date by the recovery round at every start)");
  }
  BKV_RETURN_IF_ERROR(s);
  Log("warn", "cluster_reset_state",
      {{"token", token->Describe()},
       {"next", "the node recovers its state from the other members"}});
  out << "endorser state reset (empty); at its next start the node learns "
         "the promised term, the newest certificate and its head from the "
         "other members before it endorses\n";
  return absl::OkStatus();
}

// Recovery review finding 2: with a member lost for good (N = 3), a
// restarted survivor can never hear k others. The security officer accepts
// the answers there are (at least one), audited; the risk (a second
// forgetful token goes unnoticed) is in docs/operations.md.
absl::Status Recover(const VaultConfig& c, const std::string& so_pin_file,
                     bool accept_fewer, std::ostream& out) {
  if (!accept_fewer) {
    return absl::InvalidArgumentError(
        "--accept-fewer is required: every start recovers by itself; this "
        "override is for a member lost for good (docs/operations.md)");
  }
  BKV_RETURN_IF_ERROR(ProveSoPin(c, so_pin_file));
  BKV_ASSIGN_OR_RETURN(DataDirLock lock, DataDirLock::Acquire(c.data_dir));
  BKV_ASSIGN_OR_RETURN(QuorumSettings q, LoadQuorumSettings(c));
  BKV_ASSIGN_OR_RETURN(std::shared_ptr<hsm::Pkcs11Hsm> token, OpenNodeToken(c));
  BKV_RETURN_IF_ERROR(UseFormedMembers(token, q));
  BKV_ASSIGN_OR_RETURN(auto endorser,
                       freshness::Endorser::Open(token, q.members, q.node_id));
  std::vector<std::string> refused;
  absl::Status s = freshness::RecoveryRound(*endorser, OtherMembers(q),
                                            q.endorse_timeout, &refused, true);
  for (const std::string& why : refused) out << "not counted: " << why << "\n";
  BKV_RETURN_IF_ERROR(s);
  const fresh::v1::EndorserState state = endorser->State();
  const std::string seq = absl::StrCat(freshness::HeldHead(state).seq());
  Log("warn", "cluster_recover_accept_fewer",
      {{"token", token->Describe()},
       {"promised_term", absl::StrCat(state.promised_term())},
       {"held_seq", seq},
       {"normally_needs", absl::StrCat(q.members.recovery_quorum())},
       {"risk",
        "a second forgetful token among the answerers goes unnoticed"}});
  out << "endorser state recovered from fewer answers than "
      << q.members.recovery_quorum() << " (security officer's override): "
      << "promised term " << state.promised_term() << ", held seq " << seq
      << "; start this node's vault now: its next start trusts this state "
         "once\n";
  return absl::OkStatus();
}

// `cluster <sub>`: its run on the settings serve's flags give.
int RunCluster(const std::string& sub, const ConfigArgs& args,
               const std::string& so_pin_file, bool accept_fewer, Io io) {
  auto config = LoadParsedConfig(args);
  if (!config.ok()) {
    io.err << "bkv-vault cluster " << sub << ": " << config.status().message()
           << "\n";
    return kExitUsage;
  }
  absl::Status s =
      sub == "digest"        ? Digest(*config, io.out)
      : sub == "reset-state" ? ResetState(*config, so_pin_file, io.out)
      : sub == "recover" ? Recover(*config, so_pin_file, accept_fewer, io.out)
                         : KeyGen(*config, sub == "keygen", io.out);
  if (!s.ok()) {
    io.err << "bkv-vault cluster " << sub << ": " << s.message() << "\n";
    return kExitFailed;
  }
  return kExitOk;
}

int RunForm(const ConfigArgs& args, const FormArgs& form, Io io) {
  auto config = LoadParsedConfig(args);
  absl::Status s = config.ok() ? Form(*config, form, io.out) : config.status();
  if (!s.ok()) {
    io.err << "bkv-vault cluster form: " << s.message() << "\n";
    return config.ok() ? kExitFailed : kExitUsage;
  }
  return kExitOk;
}

void RegisterForm(VaultCli& cli, CLI::App& cluster) {
  auto args = std::make_shared<ConfigArgs>();
  auto form = std::make_shared<FormArgs>();
  CLI::App* cmd = cli.Add(
      cluster, "form", "write the members list into this token (SO PIN)",
      "With the node's vault stopped and the security officer's PIN: checks "
      "--members against this token's endorsement key and writes the list "
      "into the token; `serve` then takes membership from the token and "
      "refuses a members file that differs. Replacing members: --export OUT "
      "on every survivor (it stops serving the old list), then --carry "
      "OUT1,OUT2,... on every member of the new list (docs/operations.md "
      "\"Replacing a node\").",
      [args, form](Io io) { return RunForm(*args, *form, io); });
  AddConfigFlags(*cmd, *args);
  cli.Value(cmd, "--members", form->members_file, "FILE",
            "the members list to form")
      ->required();
  cmd->add_option("--node-id", form->node_id, "this node's id in --members")
      ->required();
  cli.SoPinFile(cmd, form->so_pin_file);
  cli.Value(cmd, "--export", form->export_to, "OUT",
            "hand this survivor's state over to --members");
  cli.Value(cmd, "--carry", form->carry_from, "FILES",
            "the survivors' hand-overs, comma-separated");
  cli.Value(cmd, "--decision", form->decision, "FILE",
            "with --carry: the quorum re-anchor's table (`rollback reanchor "
            "--carry`)");
  cmd->add_option("--max-attempts", form->max_attempts,
                  "with --decision: the K it may cap at (default and most: "
                  "[freshness] reanchor_max_attempts)")
      ->type_name("K");
  cmd->add_flag("--accept-fewer", form->accept_fewer,
                "with --export, or --carry and --decision: fewer hand-overs "
                "than the carry bound N - q + 2; the decision must re-anchor "
                "every shard (every account keeps at most K attempts; "
                "audited). Each such ceremony spends one of every shard's "
                "B lifetime re-anchors ([freshness] reanchor_budget, default "
                "4): 3 members pay it at every member lost for good; the way "
                "out is 5 members, not --force");
  cmd->add_option("--leaving-exports", form->leaving_exports,
                  "with --export: ids of leaving members that hand over too "
                  "(a healthy swap), counted toward the carry bound")
      ->delimiter(',')
      ->type_name("ID,...");
}

}  // namespace

void RegisterClusterCommands(VaultCli& cli) {
  CLI::App* cluster =
      cli.Add(cli.root(), "cluster",
              "the quorum of endorsing nodes: key ceremony", "", nullptr);
  struct Sub {
    const char* name;
    const char* summary;
    const char* details;
  };
  static constexpr Sub kSubs[] = {
      {"keygen", "make (or show) this token's endorsement key",
       "On each node, its vault stopped (docs/operations.md \"Quorum of "
       "endorsing nodes\"): makes this token's Ed25519 endorsement key (a "
       "token keeps its key for life: an existing one is shown, not "
       "replaced) and prints its public key, fingerprint and line for the "
       "members file."},
      {"show", "print this token's endorsement key",
       "Prints the public key, fingerprint and members line of the key the "
       "token has."},
      {"digest", "check the members file, print its digest",
       "Checks [freshness] members_file and node_id against this token and "
       "prints the members digest: compare it across all nodes."},
      {"reset-state", "give a token that lost its endorser state an empty one",
       "With the node's vault stopped and the security officer's PIN "
       "(--so-pin-file): for a token that has its endorsement key but no "
       "endorser state (the vault refuses to start, \"the endorser state is "
       "gone\"). The node then recovers its state from the other members "
       "(docs/operations.md \"An endorser whose state is gone\")."},
      {"recover", "finish this node's recovery with fewer answers (SO PIN)",
       "With the node's vault stopped, --accept-fewer and the security "
       "officer's PIN: runs the recovery round against the other members and "
       "accepts it with at least one valid answer instead of N - floor(N/2) "
       "(a member lost for good with N = 3); the next start of the vault "
       "trusts the result once. Risk: a second forgetful token among the "
       "answerers goes unnoticed (docs/operations.md \"A member lost for "
       "good\")."},
  };
  for (const Sub& sub : kSubs) {
    auto args = std::make_shared<ConfigArgs>();
    auto so_pin_file = std::make_shared<std::string>();
    auto accept_fewer = std::make_shared<bool>(false);
    const std::string name = sub.name;
    CLI::App* cmd = cli.Add(*cluster, sub.name, sub.summary, sub.details,
                            [args, so_pin_file, accept_fewer, name](Io io) {
                              return RunCluster(name, *args, *so_pin_file,
                                                *accept_fewer, io);
                            });
    AddConfigFlags(*cmd, *args);
    if (name == "recover") {
      cmd->add_flag("--accept-fewer", *accept_fewer,
                    "accept fewer answers than the round needs (audited)");
    }
    if (name == "reset-state" || name == "recover") {
      cli.SoPinFile(cmd, *so_pin_file);
    }
  }
  RegisterForm(cli, *cluster);
}

}  // namespace bkv::server
