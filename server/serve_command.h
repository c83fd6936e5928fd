#ifndef BKV_SERVER_SERVE_COMMAND_H_
#define BKV_SERVER_SERVE_COMMAND_H_

#include "server/vault_cli.h"

namespace bkv::server {

// `bkv-vault serve [--config FILE] [flags]`: runs the vault until SIGTERM or
// SIGINT, then drains in-flight calls and exits 0. Fails closed: if a
// self-test, the token, the store or the audit log is not right, the port
// never opens and the reason is logged.
void RegisterServeCommand(VaultCli& cli);

}  // namespace bkv::server

#endif  // BKV_SERVER_SERVE_COMMAND_H_
