#ifndef BKV_SERVER_BUILD_VAULT_H_
#define BKV_SERVER_BUILD_VAULT_H_

// The composition root: every component of a serving vault node is built
// from the config here, in one function, apart from the serve loop
// (serve_command.cc) that only listens and drains.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bkv/vault/v1/vault.pb.h"
#include "crypto/opaque.h"
#include "freshness/fresh_record_store.h"
#include "hsm/key_ceremony.h"
#include "server/account_token.h"
#include "server/audit_log.h"
#include "server/config.h"
#include "server/data_dir_lock.h"
#include "server/hsm_command.h"
#include "server/instrumented.h"
#include "server/metrics.h"
#include "server/quorum_node.h"
#include "server/rate_limiter.h"
#include "server/ticket_sealer.h"
#include "server/vault.h"
#include "server/vault_service.h"
#include "storage/etcd_record_store.h"
#include "storage/record_store.h"

namespace bkv::server {

// Where every setting goes: the options each component is built with,
// derived from the config in this one place. BuildVault builds from exactly
// these; a test checks that each config key changes at least one of them (a
// key that reaches nothing is a bug, as --hsm-sessions was).
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
  bool dev = false;  // may make a development token and issuer
  std::string data_dir;
  std::string softhsm_dir;  // the development token, when no PIN is given
  std::string audit_log, key_check;
  struct Store {
    bool etcd = false;                 // else RocksDB under records_dir
    std::string records_dir;           // RocksDB
    uint32_t shred_retry_ms = 60'000;  // RocksDB: failed shreds' retries
    // Every cluster's options but its endpoints, and each cluster's
    // endpoints (accounts sharded over them: storage/etcd_shards.h).
    storage::EtcdRecordStoreOptions etcd_options;
    std::vector<std::vector<std::string>> etcd_clusters;
    bool anchor = true;  // freshness (docs/rollback.md)
    uint32_t shards = 16;
    uint32_t ceremonies = 8;    // B at genesis ("The lifetime budget")
    uint32_t max_attempts = 2;  // K ([freshness] reanchor_max_attempts)
  } store;
  // The quorum of endorsing nodes; members_file empty: this node's token
  // alone anchors (docs/rollback.md).
  struct Quorum {
    std::string members_file;
    int64_t node_id = 0;
    std::string peer_listen;
    int64_t endorse_timeout_ms = 0;
    bool owner = false;
    int64_t owner_lease_ttl_s = 0;  // etcd: the owner is elected
    std::string peer_cert_file, peer_key_file, peer_ca_file;
    bool owner_candidate = true;  // false: never campaigns (elected owner)
  } quorum;
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

// One vault node's components, owned together; members are declared (so
// built, and destroyed in reverse) in dependency order. Not movable: the
// components refer to each other.
struct VaultNode {
  VaultNode() = default;
  VaultNode(const VaultNode&) = delete;
  VaultNode& operator=(const VaultNode&) = delete;

  ComponentOptions options;
  std::optional<DataDirLock> data_dir_lock;
  std::shared_ptr<hsm::Pkcs11Hsm> token;
  std::optional<hsm::VaultKeys> keys;
  Metrics metrics;
  std::optional<TimedSealer> sealer;
  std::optional<TimedKeyedHash> oprf_seed;
  std::optional<EpochTicketSealer> ticket_sealer;
  std::optional<opaque::ServerKeyPair> server_keys;
  std::unique_ptr<FileAuditLog> audit;
  std::unique_ptr<storage::RecordStore> store;
  std::unique_ptr<QuorumNode> quorum;                // [freshness] members_file
  std::unique_ptr<freshness::TokenHeadStore> heads;  // without a quorum
  std::unique_ptr<freshness::FreshRecordStore> fresh;  // over `store`
  std::unique_ptr<storage::RecordStore> standby;       // a quorum's non-owner
  std::unique_ptr<OwnerRole> elected;  // a quorum over etcd: owner elected
  std::optional<TimedRecordStore> timed_store;
  std::unique_ptr<TokenVerifier> verifier;
  std::optional<opaque::OpaqueServer> opaque_server;
  std::optional<Vault> vault;
  std::optional<RateLimiter> read_limits, guess_limits, call_limits,
      peer_limits, unauthenticated_limits;
  std::optional<VaultService> service;
};

// Builds a node from `c` (validated): the data directory, self-tests, the
// token and its keys (checked against the key check file), the audit log,
// the record store `c` names (RocksDB, or etcd), the token verifier, the
// vault and its gRPC service. Fails closed: on error the reason is logged
// under a specific event (hsm_unavailable, storage_unavailable, ...) and
// returned; nothing is served.
absl::StatusOr<std::unique_ptr<VaultNode>> BuildVault(const VaultConfig& c);
// The same, under a data directory lock the caller already holds (an
// offline command that must tell "a vault is serving" from other failures).
absl::StatusOr<std::unique_ptr<VaultNode>> BuildVault(const VaultConfig& c,
                                                      DataDirLock held);

// For offline ceremonies (`bkv-vault rollback`): the token, its keys, the
// audit log and the raw record store of `c`, nothing anchored or served.
absl::StatusOr<std::unique_ptr<VaultNode>> BuildVaultStorage(
    const VaultConfig& c);

// The PKCS#11 module the vault would log in with; the development token is
// located the way `serve` finds it (for VerifySoPin before any login).
absl::StatusOr<std::string> TokenModulePath(const VaultConfig& c);

// The token `c` names, opened as `serve` opens it (a development token is
// made under data_dir, with the vault's keys, when it holds no records yet):
// for ceremonies on the token alone (`bkv-vault cluster`).
absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenNodeToken(
    const VaultConfig& c);

// The node's audit log for a ceremony on `token` (`cluster form`): keyed as
// serve keys it, from the token's OPRF seed; nullptr when the token holds no
// vault keys (a member that only endorses).
absl::StatusOr<std::unique_ptr<FileAuditLog>> OpenCeremonyAuditLog(
    const VaultConfig& c, std::shared_ptr<hsm::Pkcs11Hsm> token);

// Whether a BKV_TEST_* hook (`hook`, which `what`) may act: only in a --dev
// vault on its generated token and issuer (`dev` alone is no proof of a
// test: lease3 review finding 8); FailedPrecondition naming it otherwise.
absl::Status TestHookAllowed(const VaultConfig& c, absl::string_view hook,
                             absl::string_view what);

// A new file (O_EXCL|O_NOFOLLOW, mode 0600), written and fsynced; refuses
// an existing path or symlink, removes the file when a write fails.
absl::Status WriteSecretFile(const std::string& path, absl::string_view text);

// A whole small file (config, PEM, key), NotFound naming the path.
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace bkv::server

#endif  // BKV_SERVER_BUILD_VAULT_H_
