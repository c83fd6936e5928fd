#ifndef BKV_SERVER_SERVE_COMMAND_H_
#define BKV_SERVER_SERVE_COMMAND_H_

#include <span>
#include <string>

#include "bkv/vault/v1/vault.pb.h"
#include "crypto/opaque.h"
#include "server/config.h"
#include "server/hsm_command.h"
#include "server/rate_limiter.h"
#include "server/vault.h"

namespace bkv::server {

// Where every setting goes: the options each component is built with,
// derived from the config in this one place. `serve` builds its components
// from exactly these; a test checks that each config key changes at least
// one of them (a key that reaches nothing is a bug, as --hsm-sessions was).
struct ComponentOptions {
  struct Listener {
    std::string listen;
    std::string metrics_listen;
    std::string tls_cert, tls_key;
    bool plaintext_non_loopback = false;  // checked by VaultConfig::Validate
    int64_t drain_timeout_s = 0;
    int64_t max_message_bytes = 0;
  } listener;
  HsmFlags hsm;
  std::string softhsm_dir;  // the development token, when no PIN is given
  std::string records_dir, audit_log, key_check;
  std::string issuer_keys_file;  // empty: the development issuer
  std::string dev_issuer_key, dev_issuer_keys;
  std::string audience, issuer;
  opaque::Config opaque;
  Vault::Options vault;
  struct Limits {
    RateLimiter::Options read, guess, call, peer, unauthenticated;
    std::string trusted_proxies;
  } limits;
  vault::v1::GetVaultInfoResponse info;  // without the public key
};
ComponentOptions ComponentOptionsFor(const VaultConfig& c);
// "name=value" lines, for tests.
std::string DescribeForTesting(const ComponentOptions& o);

// `bkv-vault serve [--config FILE] [flags]`: runs the vault until SIGTERM or
// SIGINT, then drains in-flight calls and exits 0. Fails closed: if a
// self-test, the token, the store or the audit log is not right, the port
// never opens and the reason is logged. Returns the exit code.
int RunServeCommand(std::span<const std::string> args);

// `bkv-vault token mint --sub ACCOUNT [--data-dir D | --key-file F --kid K]
// [--audience A] [--issuer I] [--ttl-s N]`: prints an account token signed
// with the development issuer key (for development and tests).
int RunTokenCommand(std::span<const std::string> args);

}  // namespace bkv::server

#endif  // BKV_SERVER_SERVE_COMMAND_H_
