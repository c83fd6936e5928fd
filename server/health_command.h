#ifndef BKV_SERVER_HEALTH_COMMAND_H_
#define BKV_SERVER_HEALTH_COMMAND_H_

#include "server/vault_cli.h"

namespace bkv::server {

// `bkv-vault health [--addr HOST:PORT] [--ca PEM] [--server-name N]
// [--timeout-ms N]`: asks a running vault's gRPC health service
// (grpc.health.v1.Health/Check) whether it is serving. For container
// HEALTHCHECKs and probes: no grpc_health_probe in Debian. Exits 0 serving,
// 1 not serving or unreachable (reason on stderr), 2 usage error.
void RegisterHealthCommand(VaultCli& cli);

}  // namespace bkv::server

#endif  // BKV_SERVER_HEALTH_COMMAND_H_
