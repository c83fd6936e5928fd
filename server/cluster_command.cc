#include "server/cluster_command.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/ake_key_pair.h"
#include "hsm/endorsement_key.h"
#include "server/build_vault.h"
#include "server/config.h"
#include "server/quorum_config.h"

namespace bkv::server {
namespace {

constexpr char kUsage[] =
    "usage: bkv-vault cluster <keygen|show|digest> [serve flags: --config, "
    "--data-dir, ...]\n"
    "The quorum's ceremony (docs/operations.md \"Quorum of endorsing "
    "nodes\"),\n"
    "on each node with its vault stopped:\n"
    "  keygen  make this token's Ed25519 endorsement key (a token keeps its\n"
    "          key for life: an existing one is shown, not replaced) and "
    "print\n"
    "          its public key, fingerprint and line for the members file\n"
    "  show    print them for the key the token has\n"
    "  digest  check [freshness] members_file and node_id against this token\n"
    "          and print the members digest: compare it across all nodes\n";

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
    out << "endorsement key created in the token\n";
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

}  // namespace

int RunClusterCommand(std::span<const std::string> args, std::ostream& out,
                      std::ostream& err) {
  const bool help = std::any_of(args.begin(), args.end(), [](const auto& a) {
    return a == "--help" || a == "-h";
  });
  if (args.empty() || help) {
    (help ? out : err) << kUsage;
    return help ? 0 : 2;
  }
  const std::string sub = args[0];
  if (sub != "keygen" && sub != "show" && sub != "digest") {
    err << "bkv-vault cluster: unknown subcommand '" << sub << "'\n" << kUsage;
    return 2;
  }
  auto config = LoadConfig(args.subspan(1));
  if (!config.ok()) {
    err << "bkv-vault cluster " << sub << ": " << config.status().message()
        << "\n";
    return 2;
  }
  absl::Status s = sub == "digest" ? Digest(*config, out)
                                   : KeyGen(*config, sub == "keygen", out);
  if (!s.ok()) {
    err << "bkv-vault cluster " << sub << ": " << s.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace bkv::server
