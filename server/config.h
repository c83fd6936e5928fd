#ifndef BKV_SERVER_CONFIG_H_
#define BKV_SERVER_CONFIG_H_

#include <map>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace CLI {
class App;
}  // namespace CLI

namespace bkv::server {

// Everything `bkv-vault serve` can be told. Defaults are the embedded
// development setup: data under ./var/bkv, a SoftHSM token created there on
// first start, a development token issuer, loopback listeners.
// Precedence: defaults < TOML file (--config) < command-line flags.
struct VaultConfig {
  // [server]
  // A development vault: without a PIN it makes a SoftHSM token under
  // data_dir, without issuer_keys_file a token issuer there. Off, both must
  // be configured, so a production vault never starts on generated keys.
  bool dev = false;
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";  // empty: no metrics HTTP
  std::string data_dir = "./var/bkv";
  std::string tls_cert;  // PEM; with tls_key, serve TLS
  std::string tls_key;
  bool allow_plaintext_non_loopback = false;
  int64_t drain_timeout_s = 10;
  int64_t max_message_bytes = 64 * 1024;
  // [hsm]
  std::string hsm_module;  // empty: SoftHSMv2, located at run time
  std::string hsm_token_label = "bkv";
  std::string hsm_pin_file;  // empty: $BKV_HSM_PIN, else the dev token
  std::string softhsm_dir;   // dev token dir; empty: <data_dir>/softhsm
  int64_t hsm_sessions = 8;
  // [opaque]
  std::string opaque_context = "bkv OPAQUE v1";
  std::string server_identity;  // empty: the server public key (RFC 9807)
  // [policy]
  int64_t attempt_limit = 10;
  int64_t login_ttl_s = 60;
  int64_t min_ksf_memory_kib = 8192;
  // RequestReset to due ("forgot password" waits this long).
  int64_t reset_delay_s = 7 * 24 * 3600;
  // [realm] this vault as one realm of threshold sets (docs/threshold.md);
  // empty: not a realm. When set, [auth] audience must equal it.
  std::string realm_id;
  // How long a prepared threshold version blocks a Prepare of another.
  int64_t pending_ttl_s = 600;
  // [auth]
  std::string audience = "bkv-vault";
  std::string issuer;  // empty: any iss
  // Lines "<kid> <64 hex digits Ed25519 public key>"; empty: the development
  // issuer under <data_dir> (generated on first start).
  std::string issuer_keys_file;
  // [rate_limit] token buckets; docs/operations.md "Rate limits" says why
  // these sizes. Per account: reads, guesses (RecoverStart), other calls.
  double read_burst = 60;
  double read_per_second = 5;
  double guess_burst = 10;
  double guess_per_second = 0.2;
  double account_burst = 40;
  double account_per_second = 2;
  // Per client address: calls with a valid token, calls without one.
  double peer_burst = 200;
  double peer_per_second = 100;
  double unauthenticated_burst = 50;
  double unauthenticated_per_second = 10;
  // Comma-separated proxy addresses whose x-forwarded-for is trusted.
  std::string trusted_proxies;
  // [audit]
  std::string audit_log;  // empty: <data_dir>/audit.log
  // [storage] Where the records live: "rocksdb" (under data_dir, one node)
  // or "etcd" (one etcd cluster shared by every vault node; docs/storage.md).
  std::string storage_backend = "rocksdb";
  std::string etcd_endpoints;  // comma-separated host:port of the members
  // Several clusters, accounts sharded over them (docs/storage.md): in TOML
  // an array of endpoint arrays, as a flag "h:p,h:p;h:p,h:p". Instead of
  // etcd_endpoints.
  std::string etcd_clusters;
  std::string etcd_key_prefix = "bkv/";
  std::string etcd_ca_file;  // TLS to etcd: members' CA, client cert, key
  std::string etcd_cert_file;
  std::string etcd_key_file;
  bool etcd_insecure = false;  // plaintext to etcd: loopback members only
  int64_t etcd_call_timeout_ms = 2000;
  int64_t etcd_op_timeout_ms = 10000;
  // RocksDB: how often failed shreds are retried (docs/storage.md, "Shred on
  // RocksDB").
  int64_t shred_retry_s = 60;
  // [freshness] docs/rollback.md
  int64_t freshness_shards = 16;
  // B: re-anchors each shard may have in its life, written when the heads
  // are created (docs/rollback.md "The lifetime budget"); 4 keeps B·K = 8
  // below the default attempt_limit 10 with K = 2.
  int64_t freshness_reanchor_budget = 4;
  // K: the most attempts a re-anchored record keeps, every ceremony's
  // --max-attempts default and maximum (budget review finding 8). Unset in
  // the file and flags, B and K follow attempt_limit (ResolveReanchor).
  int64_t freshness_reanchor_max_attempts = 2;
  bool freshness_single_node = false;  // etcd: the only vault node
  // The quorum of endorsing nodes (docs/rollback.md "Quorum across nodes"):
  // the members file (`<id> <endorsement key hex> <peer host:port>` lines),
  // this node's id in it, where its Endorser service listens, how long a
  // round waits, and who owns the chain (extends it and serves account
  // calls): with etcd the member holding the owner lease, elected, with this
  // TTL; with RocksDB the one node the operator marks `owner`.
  std::string freshness_members_file;
  int64_t freshness_node_id = 0;
  std::string freshness_peer_listen;
  int64_t freshness_endorse_timeout_ms = 2000;
  bool freshness_owner = false;
  int64_t freshness_owner_lease_ttl_s = 5;
  // Elected owner only: false makes this member endorser-only, it never
  // campaigns (docs/rollback.md "The election's open findings").
  bool freshness_owner_candidate = true;
  // mTLS on the peer channel: this node's certificate and key (server and
  // client: serverAuth and clientAuth), the CA every member's is signed by.
  std::string freshness_peer_cert_file;
  std::string freshness_peer_key_file;
  std::string freshness_peer_ca_file;
  bool PeerTls() const { return !freshness_peer_ca_file.empty(); }
  bool UsesQuorum() const { return !freshness_members_file.empty(); }
  // The quorum's owner is elected by an etcd lease (docs/rollback.md
  // "Election"), not chosen by `owner`.
  bool ElectsOwner() const { return UsesQuorum() && UsesEtcd(); }
  // Whether records are anchored in the HSM: always on RocksDB; on etcd for
  // a single node or with the quorum.
  bool AnchorsRecords() const {
    return !UsesEtcd() || freshness_single_node || UsesQuorum();
  }

  // Paths derived from data_dir when not set.
  std::string SoftHsmDir() const;
  std::string AuditLogPath() const;
  std::string RecordsDir() const;
  std::string DevIssuerKeyPath() const;
  std::string DevIssuerKeysPath() const;
  std::string KeyCheckPath() const;  // hsm/key_ceremony.h MakeKeyCheck
  bool UsesEtcd() const { return storage_backend == "etcd"; }
  std::vector<std::string> EtcdEndpoints() const;
  // The clusters' endpoints, in order: etcd_clusters, or etcd_endpoints as
  // the one cluster.
  std::vector<std::vector<std::string>> EtcdClusters() const;

  absl::Status Validate() const;

  // One ceremony's K (budget review finding 8): `given` (--max-attempts),
  // or reanchor_max_attempts when 0. `checked` (every capping ceremony but
  // a single node's --genesis, whose officer vouches for the copy): at
  // least 1, below attempt_limit, and at most the setting.
  absl::StatusOr<uint32_t> CeremonyMaxAttempts(uint32_t given,
                                               bool checked) const;
};

// The settings as a command line gave them: --config FILE and one flag per
// setting, values as typed (checked by LoadConfig).
struct ConfigArgs {
  std::string config_file;
  std::map<std::string, std::string> values;  // flag name without "--"
};

// Defines --config and every setting's flag on `cmd` (`serve`, `rollback
// reanchor`), grouped by TOML table; parsing fills `args`, which must
// outlive `cmd`.
void AddConfigFlags(CLI::App& cmd, ConfigArgs& args);

// Defaults, then the TOML file, then the flags; validated.
absl::StatusOr<VaultConfig> LoadParsedConfig(const ConfigArgs& args);

// The same from `serve`'s flags alone (`--attempt-limit=7`, ...).
absl::StatusOr<VaultConfig> LoadConfig(std::span<const std::string> args);

// Every setting's flag name (without "--"), in table order.
std::vector<std::string> ConfigFlags();

}  // namespace bkv::server

#endif  // BKV_SERVER_CONFIG_H_
