#ifndef BKV_SERVER_ACCOUNT_COMMAND_H_
#define BKV_SERVER_ACCOUNT_COMMAND_H_

#include "server/vault_cli.h"

namespace bkv::server {

// `bkv-vault account purge --account ID --yes [serve flags]`: the operator's
// purge of one account's record, its epoch tombstone included, run with the
// vault stopped (docs/threshold.md, "Operator purge of one account";
// docs/operations.md, "Purging one account at a realm", has the exit codes).
void RegisterAccountCommands(VaultCli& cli);

// The purge's own exit codes besides kExitOk/kExitFailed/kExitUsage.
inline constexpr int kExitNoRecord = 3;      // nothing to purge, nothing done
inline constexpr int kExitVaultServing = 4;  // serve.lock held, nothing done
inline constexpr int kExitNotExpected = 5;   // not at --expect-epoch

}  // namespace bkv::server

#endif  // BKV_SERVER_ACCOUNT_COMMAND_H_
