#ifndef BKV_SERVER_ROLLBACK_COMMAND_H_
#define BKV_SERVER_ROLLBACK_COMMAND_H_

#include "server/vault_cli.h"

namespace bkv::server {

// `bkv-vault rollback reanchor --so-pin-file FILE [--max-attempts K]
// [--shards all-stale|N,M] [serve flags]`: the disaster-recovery ceremony of
// docs/rollback.md, run with the vault stopped. Proves the security
// officer's PIN (C_Login as CKU_SO) before anything changes, re-anchors the
// chosen shards with every record capped at K attempts, writes an audit
// line per shard and prints what it did.
void RegisterRollbackCommands(VaultCli& cli);

}  // namespace bkv::server

#endif  // BKV_SERVER_ROLLBACK_COMMAND_H_
