#ifndef BKV_SERVER_TOKEN_COMMAND_H_
#define BKV_SERVER_TOKEN_COMMAND_H_

#include "server/vault_cli.h"

namespace bkv::server {

// `bkv-vault token mint --sub ACCOUNT [--data-dir D | --key-file F --kid K]
// [--audience A] [--issuer I] [--ttl-s N]`: prints an account token signed
// with the development issuer key (for development and tests).
void RegisterTokenCommands(VaultCli& cli);

}  // namespace bkv::server

#endif  // BKV_SERVER_TOKEN_COMMAND_H_
