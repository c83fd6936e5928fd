#ifndef BKV_SERVER_CLUSTER_COMMAND_H_
#define BKV_SERVER_CLUSTER_COMMAND_H_

#include "server/vault_cli.h"

namespace bkv::server {

// `bkv-vault cluster keygen|show|digest [serve flags]`: the quorum's
// ceremony (docs/operations.md "Quorum of endorsing nodes"). keygen makes
// this token's Ed25519 endorsement key (or keeps the one it has) and prints
// its public key, fingerprint and members line; show prints them; digest
// checks the [freshness] settings and the members file against this token
// and prints the members digest the officer compares across nodes. Each
// takes serve's flags (--config, --data-dir, ...).
void RegisterClusterCommands(VaultCli& cli);

}  // namespace bkv::server

#endif  // BKV_SERVER_CLUSTER_COMMAND_H_
