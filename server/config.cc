#include "server/config.h"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cmdline/cmdline.h"
#include "crypto/realm_set.h"
#include "crypto/status_macros.h"
#include "freshness/head_table.h"
#include "freshness/reanchor.h"
#include "hsm/key_ceremony.h"
#include "net/loopback.h"
#include "server/rate_limiter.h"

namespace bkv::server {
namespace {

// A setting whose default depends on others (LoadParsedConfig).
constexpr int64_t kUnsetSetting = std::numeric_limits<int64_t>::min();

// One row per setting: its TOML table and key, its flag, where it lives.
struct Option {
  const char* table;
  const char* key;
  const char* flag;
  std::variant<std::string VaultConfig::*, int64_t VaultConfig::*,
               double VaultConfig::*, bool VaultConfig::*>
      field;
  const char* help;
};

const Option kOptions[] = {
    {"server", "dev", "dev", &VaultConfig::dev,
     "development vault: generated SoftHSM token and token issuer under "
     "data_dir when no PIN or issuer_keys_file is configured"},
    {"server", "listen", "listen", &VaultConfig::listen,
     "gRPC address host:port"},
    {"server", "metrics_listen", "metrics-listen", &VaultConfig::metrics_listen,
     "Prometheus /metrics address host:port (empty: off)"},
    {"server", "data_dir", "data-dir", &VaultConfig::data_dir,
     "RocksDB records, dev token, audit log"},
    {"server", "tls_cert", "tls-cert", &VaultConfig::tls_cert,
     "PEM certificate chain; with tls_key, serve TLS"},
    {"server", "tls_key", "tls-key", &VaultConfig::tls_key, "PEM private key"},
    {"server", "allow_plaintext_non_loopback", "allow-plaintext-non-loopback",
     &VaultConfig::allow_plaintext_non_loopback,
     "serve plaintext on a non-loopback address (behind a TLS proxy only)"},
    {"server", "drain_timeout_s", "drain-timeout-s",
     &VaultConfig::drain_timeout_s,
     "on SIGTERM, seconds to let in-flight calls finish"},
    {"server", "max_message_bytes", "max-message-bytes",
     &VaultConfig::max_message_bytes, "largest gRPC request accepted"},
    {"hsm", "module", "hsm-module", &VaultConfig::hsm_module,
     "PKCS#11 module path (empty: SoftHSMv2)"},
    {"hsm", "token_label", "hsm-token-label", &VaultConfig::hsm_token_label,
     "token label"},
    {"hsm", "pin_file", "hsm-pin-file", &VaultConfig::hsm_pin_file,
     "file holding the user PIN (else $BKV_HSM_PIN, else the dev token)"},
    {"hsm", "softhsm_dir", "softhsm-dir", &VaultConfig::softhsm_dir,
     "development SoftHSM token dir (default <data_dir>/softhsm)"},
    {"hsm", "sessions", "hsm-sessions", &VaultConfig::hsm_sessions,
     "PKCS#11 sessions in the pool"},
    {"opaque", "context", "opaque-context", &VaultConfig::opaque_context,
     "OPAQUE context string, shared with clients"},
    {"opaque", "server_identity", "server-identity",
     &VaultConfig::server_identity,
     "OPAQUE server identity (empty: the public key)"},
    {"policy", "attempt_limit", "attempt-limit", &VaultConfig::attempt_limit,
     "failed recoveries before a key is destroyed (1-16)"},
    {"policy", "login_ttl_s", "login-ttl-s", &VaultConfig::login_ttl_s,
     "seconds a started login may take to finish (1-60)"},
    {"policy", "min_ksf_memory_kib", "min-ksf-memory-kib",
     &VaultConfig::min_ksf_memory_kib,
     "smallest Argon2id memory (KiB) a registration may use"},
    {"policy", "reset_delay_s", "reset-delay-s", &VaultConfig::reset_delay_s,
     "seconds from RequestReset until the reset is due (1-31536000)"},
    {"realm", "id", "realm-id", &VaultConfig::realm_id,
     "this vault's realm id in threshold sets (empty: not a realm)"},
    {"realm", "pending_ttl_s", "pending-ttl-s", &VaultConfig::pending_ttl_s,
     "seconds a prepared threshold version blocks another (1-86400)"},
    {"auth", "audience", "audience", &VaultConfig::audience,
     "expected `aud` of account tokens"},
    {"auth", "issuer", "issuer", &VaultConfig::issuer,
     "expected `iss` of account tokens (empty: any)"},
    {"auth", "issuer_keys_file", "issuer-keys-file",
     &VaultConfig::issuer_keys_file,
     "lines `<kid> <hex Ed25519 public key>` (empty: dev issuer)"},
    {"rate_limit", "read_burst", "read-burst", &VaultConfig::read_burst,
     "GetStatus/GetVaultInfo calls per account in a burst"},
    {"rate_limit", "read_per_second", "read-per-second",
     &VaultConfig::read_per_second, "sustained reads per account"},
    {"rate_limit", "guess_burst", "guess-burst", &VaultConfig::guess_burst,
     "RecoverStart calls (guesses) per account in a burst"},
    {"rate_limit", "guess_per_second", "guess-per-second",
     &VaultConfig::guess_per_second, "sustained guesses per account"},
    {"rate_limit", "account_burst", "account-burst",
     &VaultConfig::account_burst,
     "other calls (registration, RecoverFinish, Delete, RequestReset) per "
     "account in a burst"},
    {"rate_limit", "account_per_second", "account-per-second",
     &VaultConfig::account_per_second, "sustained other calls per account"},
    {"rate_limit", "peer_burst", "peer-burst", &VaultConfig::peer_burst,
     "calls with a valid token per client address in a burst"},
    {"rate_limit", "peer_per_second", "peer-per-second",
     &VaultConfig::peer_per_second, "sustained such calls per client address"},
    {"rate_limit", "unauthenticated_burst", "unauthenticated-burst",
     &VaultConfig::unauthenticated_burst,
     "calls without a valid token per client address in a burst"},
    {"rate_limit", "unauthenticated_per_second", "unauthenticated-per-second",
     &VaultConfig::unauthenticated_per_second,
     "sustained such calls per client address"},
    {"rate_limit", "trusted_proxies", "trusted-proxies",
     &VaultConfig::trusted_proxies,
     "comma-separated proxy addresses whose x-forwarded-for names the client"},
    {"audit", "path", "audit-log", &VaultConfig::audit_log,
     "audit log file (default <data_dir>/audit.log)"},
    {"storage", "backend", "storage", &VaultConfig::storage_backend,
     "record store: rocksdb (under data_dir) or etcd (shared by nodes)"},
    {"storage", "etcd_endpoints", "etcd-endpoints",
     &VaultConfig::etcd_endpoints,
     "comma-separated host:port of one etcd cluster's members"},
    {"storage", "etcd_clusters", "etcd-clusters", &VaultConfig::etcd_clusters,
     "several etcd clusters, accounts sharded over them: TOML [[...], [...]], "
     "flag `h:p,h:p;h:p,h:p` (instead of etcd_endpoints)"},
    {"storage", "etcd_key_prefix", "etcd-key-prefix",
     &VaultConfig::etcd_key_prefix,
     "prefix of every key; the same on every node of one vault"},
    {"storage", "etcd_ca_file", "etcd-ca-file", &VaultConfig::etcd_ca_file,
     "PEM CA that signed the etcd members' certificates"},
    {"storage", "etcd_cert_file", "etcd-cert-file",
     &VaultConfig::etcd_cert_file,
     "PEM client certificate for etcd's --client-cert-auth"},
    {"storage", "etcd_key_file", "etcd-key-file", &VaultConfig::etcd_key_file,
     "PEM private key of that certificate"},
    {"storage", "etcd_insecure", "etcd-insecure", &VaultConfig::etcd_insecure,
     "plaintext gRPC to etcd (loopback members only, unless "
     "allow_plaintext_non_loopback)"},
    {"storage", "etcd_call_timeout_ms", "etcd-call-timeout-ms",
     &VaultConfig::etcd_call_timeout_ms, "deadline of one etcd request"},
    {"storage", "etcd_op_timeout_ms", "etcd-op-timeout-ms",
     &VaultConfig::etcd_op_timeout_ms,
     "deadline of one store operation, retries on other members included"},
    {"storage", "shred_retry_s", "shred-retry-s", &VaultConfig::shred_retry_s,
     "rocksdb: how often shreds that failed are retried (1 to 3600 s)"},
    {"freshness", "shards", "freshness-shards", &VaultConfig::freshness_shards,
     "record shards anchored in the HSM (fixed when the heads are created; "
     "docs/rollback.md)"},
    {"freshness", "reanchor_budget", "freshness-reanchor-budget",
     &VaultConfig::freshness_reanchor_budget,
     "re-anchors each shard may have in its life, each capping its accounts "
     "at K (1-64; fixed when the heads are created; unset: derived from "
     "attempt_limit; docs/rollback.md \"The lifetime budget\")"},
    {"freshness", "reanchor_max_attempts", "freshness-reanchor-max-attempts",
     &VaultConfig::freshness_reanchor_max_attempts,
     "K: attempts a re-anchored record keeps at most, every ceremony's "
     "--max-attempts default and maximum (1 to attempt_limit - 1, "
     "reanchor_budget x K below attempt_limit; unset: derived from "
     "attempt_limit; docs/rollback.md \"The lifetime budget\")"},
    {"freshness", "single_node", "freshness-single-node",
     &VaultConfig::freshness_single_node,
     "etcd: this is the only vault node, so anchor records in its HSM "
     "(rocksdb always does)"},
    {"freshness", "members_file", "freshness-members-file",
     &VaultConfig::freshness_members_file,
     "the quorum's members: `<node id> <endorsement key hex> <peer host:port>` "
     "per line (`bkv-vault cluster keygen` prints this node's)"},
    {"freshness", "node_id", "freshness-node-id",
     &VaultConfig::freshness_node_id, "this node's id in the members file"},
    {"freshness", "peer_listen", "freshness-peer-listen",
     &VaultConfig::freshness_peer_listen,
     "address host:port of this node's Endorser service (default: its "
     "members line's)"},
    {"freshness", "endorse_timeout_ms", "freshness-endorse-timeout-ms",
     &VaultConfig::freshness_endorse_timeout_ms,
     "how long one endorsement round waits for a majority"},
    {"freshness", "owner", "freshness-owner", &VaultConfig::freshness_owner,
     "RocksDB quorum: this node extends the head chain and serves account "
     "calls (one node; the others only endorse). With etcd the owner is "
     "elected instead"},
    {"freshness", "owner_lease_ttl_s", "freshness-owner-lease-ttl-s",
     &VaultConfig::freshness_owner_lease_ttl_s,
     "etcd quorum: TTL in seconds of the owner's etcd lease (the member "
     "holding it owns the chain; a dead owner is replaced after about this "
     "long)"},
    {"freshness", "owner_candidate", "freshness-owner-candidate",
     &VaultConfig::freshness_owner_candidate,
     "etcd quorum: whether this member campaigns for the owner lease; false "
     "makes it endorser-only (it never serves account calls, so it needs no "
     "cloned vault keys)"},
    {"freshness", "peer_cert_file", "freshness-peer-cert-file",
     &VaultConfig::freshness_peer_cert_file,
     "PEM certificate of this node on the peer channel (mTLS; serverAuth "
     "and clientAuth)"},
    {"freshness", "peer_key_file", "freshness-peer-key-file",
     &VaultConfig::freshness_peer_key_file,
     "PEM private key of that certificate"},
    {"freshness", "peer_ca_file", "freshness-peer-ca-file",
     &VaultConfig::freshness_peer_ca_file,
     "PEM CA that signed every member's peer certificate (set: mTLS between "
     "members)"},
};

absl::Status SetFromString(VaultConfig& c, const Option& o,
                           const std::string& v) {
  return std::visit(
      [&](auto field) -> absl::Status {
        using T = std::remove_reference_t<decltype(c.*field)>;
        if constexpr (std::is_same_v<T, std::string>) {
          c.*field = v;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (v == "true" || v == "1") {
            c.*field = true;
          } else if (v == "false" || v == "0") {
            c.*field = false;
          } else {
            return absl::InvalidArgumentError(
                absl::StrCat("--", o.flag, " wants true or false, got ", v));
          }
        } else if constexpr (std::is_same_v<T, int64_t>) {
          if (!absl::SimpleAtoi(v, &(c.*field))) {
            return absl::InvalidArgumentError(
                absl::StrCat("--", o.flag, " wants an integer, got ", v));
          }
        } else {
          if (!absl::SimpleAtod(v, &(c.*field))) {
            return absl::InvalidArgumentError(
                absl::StrCat("--", o.flag, " wants a number, got ", v));
          }
        }
        return absl::OkStatus();
      },
      o.field);
}

// [storage] etcd_clusters = [["h:p", ...], ...] in its flag form.
std::optional<std::string> ClusterListFromToml(const toml::node& n) {
  const toml::array* clusters = n.as_array();
  if (clusters == nullptr) return std::nullopt;
  std::vector<std::string> parts;
  for (const toml::node& cluster : *clusters) {
    const toml::array* members = cluster.as_array();
    if (members == nullptr || members->empty()) return std::nullopt;
    std::vector<std::string> endpoints;
    for (const toml::node& m : *members) {
      std::optional<std::string> e = m.value<std::string>();
      if (!e || e->empty() || absl::StrContains(*e, ',') ||
          absl::StrContains(*e, ';')) {
        return std::nullopt;
      }
      endpoints.push_back(*e);
    }
    parts.push_back(absl::StrJoin(endpoints, ","));
  }
  return absl::StrJoin(parts, ";");
}

absl::Status SetFromToml(VaultConfig& c, const Option& o, const toml::node& n) {
  if (n.is_array() && std::string_view(o.key) == "etcd_clusters") {
    std::optional<std::string> list = ClusterListFromToml(n);
    if (!list) {
      return absl::InvalidArgumentError(
          "config [storage] etcd_clusters must be an array of non-empty "
          "arrays of \"host:port\" strings");
    }
    c.etcd_clusters = *list;
    return absl::OkStatus();
  }
  return std::visit(
      [&](auto field) -> absl::Status {
        using T = std::remove_reference_t<decltype(c.*field)>;
        std::optional<T> v;
        if constexpr (std::is_same_v<T, double>) {
          if (auto i = n.value<int64_t>()) {
            v = static_cast<double>(*i);
          } else {
            v = n.value<double>();
          }
        } else {
          v = n.value<T>();
        }
        if (!v) {
          return absl::InvalidArgumentError(absl::StrCat(
              "config [", o.table, "] ", o.key, " has the wrong type"));
        }
        c.*field = *v;
        return absl::OkStatus();
      },
      o.field);
}

absl::Status LoadToml(const std::string& path, VaultConfig& c) {
  // Debian's toml++ is built with exceptions: this is the one place they
  // are caught and turned into a status.
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config ", path, ":", e.source().begin.line, ": ",
                     std::string(e.description())));
  }
  for (const auto& [table_name, node] : root) {
    const toml::table* table = node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("config ", path, ": `", std::string(table_name.str()),
                       "` must be a [table]"));
    }
    for (const auto& [key, value] : *table) {
      const Option* opt = nullptr;
      for (const Option& o : kOptions) {
        if (table_name.str() == o.table && key.str() == o.key) opt = &o;
      }
      if (opt == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config ", path, ": unknown setting [",
            std::string(table_name.str()), "] ", std::string(key.str())));
      }
      if (auto s = SetFromToml(c, *opt, value); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateEtcdClusters(const VaultConfig& c) {
  if (!c.etcd_endpoints.empty() && !c.etcd_clusters.empty()) {
    return absl::InvalidArgumentError(
        "set etcd_endpoints (one cluster) or etcd_clusters (several), not "
        "both");
  }
  const std::vector<std::vector<std::string>> clusters = c.EtcdClusters();
  if (clusters.empty()) {
    return absl::InvalidArgumentError(
        "storage etcd needs etcd_endpoints (host:port,host:port,...) or "
        "etcd_clusters");
  }
  for (size_t i = 0; i < clusters.size(); ++i) {
    if (clusters[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "etcd_clusters: cluster ", i, " lists no endpoint (`;;`?)"));
    }
    if (!c.etcd_insecure || c.allow_plaintext_non_loopback) continue;
    for (const std::string& e : clusters[i]) {
      if (!IsLoopbackHostPort(e)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "refusing plaintext to etcd member ", e,
            ": etcd_insecure is for loopback test clusters; configure "
            "etcd_ca_file (and etcd_cert_file/etcd_key_file), or set "
            "allow_plaintext_non_loopback on a private network"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateEtcd(const VaultConfig& c) {
  if (auto s = ValidateEtcdClusters(c); !s.ok()) return s;
  if (!c.etcd_insecure && c.etcd_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "storage etcd needs etcd_ca_file (TLS to etcd), or etcd_insecure "
        "for a loopback test cluster");
  }
  if (c.etcd_cert_file.empty() != c.etcd_key_file.empty()) {
    return absl::InvalidArgumentError(
        "set both etcd_cert_file and etcd_key_file, or neither");
  }
  if (c.etcd_key_prefix.empty()) {
    return absl::InvalidArgumentError("etcd_key_prefix must not be empty");
  }
  if (c.etcd_call_timeout_ms < 10 ||
      c.etcd_op_timeout_ms < c.etcd_call_timeout_ms ||
      c.etcd_op_timeout_ms > 600000) {
    return absl::InvalidArgumentError(
        "need 10 <= etcd_call_timeout_ms <= etcd_op_timeout_ms <= 600000");
  }
  return absl::OkStatus();
}

// With etcd the owner is elected (docs/rollback.md "Election"): one lease
// key and the guard compared with it live in one cluster.
absl::Status ValidateElection(const VaultConfig& c) {
  if (c.freshness_owner_lease_ttl_s < 2 || c.freshness_owner_lease_ttl_s > 60) {
    return absl::InvalidArgumentError(
        "[freshness] owner_lease_ttl_s must be 2 to 60");
  }
  if (!c.ElectsOwner()) {
    if (!c.freshness_owner_candidate) {
      return absl::InvalidArgumentError(
          "[freshness] owner_candidate = false is for a quorum over etcd, "
          "whose owner is elected; with RocksDB set owner on the one owner "
          "node instead");
    }
    return absl::OkStatus();
  }
  if (c.freshness_owner) {
    return absl::InvalidArgumentError(
        "[freshness] owner is for a quorum over RocksDB: with storage = etcd "
        "the members elect the owner by an etcd lease (owner_lease_ttl_s); "
        "remove owner");
  }
  if (c.EtcdClusters().size() > 1) {
    return absl::InvalidArgumentError(
        "a quorum over etcd elects its owner in one etcd cluster: use "
        "etcd_endpoints, not etcd_clusters (several clusters with a quorum "
        "are not supported yet)");
  }
  return absl::OkStatus();
}

// The file's content (members, this node's id in it) is checked at start
// (server/quorum_config.h); here what the settings alone say.
absl::Status ValidateQuorum(const VaultConfig& c) {
  if (!c.UsesQuorum()) {
    if (c.freshness_node_id != 0 || !c.freshness_peer_listen.empty() ||
        c.freshness_owner || c.PeerTls()) {
      return absl::InvalidArgumentError(
          "[freshness] node_id, peer_listen, owner and the peer TLS files "
          "need members_file (the "
          "quorum's members list; docs/operations.md \"Quorum of endorsing "
          "nodes\")");
    }
    return absl::OkStatus();
  }
  if (c.freshness_single_node) {
    return absl::InvalidArgumentError(
        "[freshness] single_node and members_file exclude each other: one "
        "node anchors in its own token, a quorum in a majority of tokens");
  }
  if (c.freshness_node_id < 1 || c.freshness_node_id > 0xffffffffLL) {
    return absl::InvalidArgumentError(
        "[freshness] members_file needs node_id: this node's id in that file "
        "(1 to 4294967295)");
  }
  if (c.freshness_peer_cert_file.empty() != c.freshness_peer_ca_file.empty() ||
      c.freshness_peer_key_file.empty() != c.freshness_peer_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "[freshness] peer_cert_file, peer_key_file and peer_ca_file go "
        "together (mTLS between members), or none (plaintext)");
  }
  if (c.freshness_endorse_timeout_ms < 10 ||
      c.freshness_endorse_timeout_ms > 60000) {
    return absl::InvalidArgumentError(
        "[freshness] endorse_timeout_ms must be 10 to 60000");
  }
  return ValidateElection(c);
}

// Budget review finding 8: B and K in range, and B·K below the attempt
// limit, so a shard's ceremonies give each account at most one more budget.
absl::Status ValidateReanchor(const VaultConfig& c) {
  const int64_t b = c.freshness_reanchor_budget;
  const int64_t k = c.freshness_reanchor_max_attempts;
  const int64_t limit = c.attempt_limit;
  if (b < 1 || b > freshness::kMaxCeremonies) {
    return absl::InvalidArgumentError(
        "freshness reanchor_budget must be 1 to 64 (the re-anchors a shard "
        "may have in its life, each at most K guesses per account)");
  }
  if (k < 1 || k > std::max<int64_t>(1, limit - 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[freshness] reanchor_max_attempts must be 1 to attempt_limit - 1 (",
        std::max<int64_t>(1, limit - 1),
        "): K is what a re-anchored record keeps at most, never a full "
        "budget"));
  }
  if (limit >= 2 && b * k >= limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[freshness] reanchor_budget x reanchor_max_attempts = ", b, " x ", k,
        " = ", b * k, " must be below [policy] attempt_limit ", limit,
        ": a shard's re-anchors could otherwise give an account more than one "
        "attempt budget beyond the limit; lower reanchor_budget or "
        "reanchor_max_attempts (or leave both unset: derived from "
        "attempt_limit; docs/rollback.md \"The lifetime budget\")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateStorage(const VaultConfig& c) {
  if (c.freshness_shards < 1 || c.freshness_shards > freshness::kMaxShards) {
    return absl::InvalidArgumentError(absl::StrCat(
        "[freshness] shards must be 1 to ", freshness::kMaxShards,
        " (the head table of every shard is one token attribute of at most "
        "64 KiB)"));
  }
  BKV_RETURN_IF_ERROR(ValidateReanchor(c));
  BKV_RETURN_IF_ERROR(ValidateQuorum(c));
  if (c.shred_retry_s < 1 || c.shred_retry_s > 3600) {
    return absl::InvalidArgumentError(
        "[storage] shred_retry_s must be 1 to 3600: it bounds how long a "
        "failed shred's old copies stay on disk while the vault runs");
  }
  if (c.storage_backend == "rocksdb") return absl::OkStatus();
  if (c.storage_backend == "etcd") return ValidateEtcd(c);
  return absl::InvalidArgumentError(absl::StrCat(
      "storage backend must be rocksdb or etcd, got ", c.storage_backend));
}

// host:port with a port in [0, 65535] (0: any free port, for tests);
// gRPC would otherwise bind a random port for "127.0.0.1:99999".
absl::Status ValidateListen(absl::string_view key, const std::string& listen) {
  const size_t colon = listen.rfind(':');
  const std::string digits =
      colon == std::string::npos ? "" : listen.substr(colon + 1);
  if (colon == 0 || digits.empty() || digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(), ::isdigit) ||
      std::stoi(digits) > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(key, " = \"", listen,
                     "\" is not HOST:PORT with a port from 0 to 65535 (e.g. "
                     "127.0.0.1:50051, [::1]:50051)"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string VaultConfig::SoftHsmDir() const {
  return softhsm_dir.empty() ? data_dir + "/softhsm" : softhsm_dir;
}
std::string VaultConfig::AuditLogPath() const {
  return audit_log.empty() ? data_dir + "/audit.log" : audit_log;
}
std::string VaultConfig::RecordsDir() const { return data_dir + "/records"; }
std::string VaultConfig::DevIssuerKeyPath() const {
  return data_dir + "/dev-issuer.key";
}
std::string VaultConfig::KeyCheckPath() const {
  return absl::StrCat(data_dir, "/", hsm::kKeyCheckFile);
}
std::vector<std::string> VaultConfig::EtcdEndpoints() const {
  return absl::StrSplit(etcd_endpoints, ',', absl::SkipWhitespace());
}
std::vector<std::vector<std::string>> VaultConfig::EtcdClusters() const {
  std::vector<std::vector<std::string>> out;
  if (etcd_clusters.empty()) {
    if (!etcd_endpoints.empty()) out.push_back(EtcdEndpoints());
    return out;
  }
  for (absl::string_view cluster : absl::StrSplit(etcd_clusters, ';')) {
    out.push_back(absl::StrSplit(cluster, ',', absl::SkipWhitespace()));
  }
  return out;
}
std::string VaultConfig::DevIssuerKeysPath() const {
  return data_dir + "/dev-issuer.pub";
}

absl::Status VaultConfig::Validate() const {
  BKV_RETURN_IF_ERROR(ValidateListen("listen", listen));
  if (!metrics_listen.empty()) {
    BKV_RETURN_IF_ERROR(ValidateListen("metrics_listen", metrics_listen));
  }
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError(
        "set both tls_cert and tls_key, or neither");
  }
  if (tls_cert.empty() && !allow_plaintext_non_loopback &&
      !IsLoopbackHostPort(listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing plaintext gRPC on non-loopback address ", listen,
        ": configure tls_cert/tls_key, or set "
        "allow_plaintext_non_loopback behind a TLS-terminating proxy"));
  }
  // /metrics is plain HTTP without authentication: the same rule.
  if (!metrics_listen.empty() && !allow_plaintext_non_loopback &&
      !IsLoopbackHostPort(metrics_listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing /metrics (plain HTTP, no authentication) on non-loopback "
        "address ",
        metrics_listen,
        ": keep metrics_listen on loopback and scrape through a proxy, or "
        "set allow_plaintext_non_loopback behind one that restricts access"));
  }
  // Each open login is kept in the fixed-size sealed record (storage/).
  if (attempt_limit < 1 || attempt_limit > 16) {
    return absl::InvalidArgumentError("attempt_limit must be in [1, 16]");
  }
  if (pending_ttl_s < 1 || pending_ttl_s > 24 * 3600) {
    return absl::InvalidArgumentError(
        "realm pending_ttl_s must be in [1, 86400]");
  }
  if (reset_delay_s < 1 || reset_delay_s > 365LL * 24 * 3600) {
    return absl::InvalidArgumentError("reset_delay_s must be in [1, 31536000]");
  }
  if (login_ttl_s < 1 || login_ttl_s > 60) {
    return absl::InvalidArgumentError("login_ttl_s must be in [1, 60]");
  }
  if (min_ksf_memory_kib < 8 || min_ksf_memory_kib > (4 << 20)) {
    return absl::InvalidArgumentError(
        "min_ksf_memory_kib must be in [8, 4194304]");
  }
  if (hsm_sessions < 1 || hsm_sessions > 256) {
    return absl::InvalidArgumentError("hsm sessions must be in [1, 256]");
  }
  if (max_message_bytes < 1024 || max_message_bytes > (4 << 20)) {
    return absl::InvalidArgumentError(
        "max_message_bytes must be in [1024, 4194304]");
  }
  for (auto [burst, rate] :
       {std::pair{read_burst, read_per_second},
        {guess_burst, guess_per_second},
        {account_burst, account_per_second},
        {peer_burst, peer_per_second},
        {unauthenticated_burst, unauthenticated_per_second}}) {
    if (burst < 1 || rate <= 0) {
      return absl::InvalidArgumentError(
          "rate limits need burst >= 1 and a positive rate");
    }
  }
  if (auto proxies = ParseTrustedProxies(trusted_proxies); !proxies.ok()) {
    return proxies.status();
  }
  if (audience.empty()) {
    return absl::InvalidArgumentError("auth audience must not be empty");
  }
  if (!realm_id.empty()) {
    if (auto s = threshold::CheckRealmId(realm_id); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("realm id: ", s.message()));
    }
    // One place for the per-realm audience: a token minted for another
    // realm can never be spent here (docs/threshold.md, finding 2).
    if (audience != realm_id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a realm must accept only tokens for itself: set [auth] audience = "
          "\"",
          realm_id, "\" (its [realm] id), not \"", audience, "\""));
    }
  }
  return ValidateStorage(*this);
}

namespace {

// Unset B and K follow attempt_limit (docs/rollback.md "The lifetime
// budget"): L = 10 keeps K = 2, B = 4; smaller limits lower K first, so
// B stays the 4 already written in existing tokens while L > 4. An unset
// one follows the set one (budget3 review finding 8). A reanchor_budget
// set without K (every config main accepted) above what attempt_limit
// allows is lowered to fit (budget3 review finding 1): a table's larger
// `left` then counts as min(left, B), so an upgrade or a lowered
// attempt_limit shortens the budget instead of refusing to start.
void ResolveReanchor(VaultConfig& c) {
  const int64_t spare = std::max<int64_t>(0, c.attempt_limit - 1);
  const bool b_set = c.freshness_reanchor_budget != kUnsetSetting;
  if (c.freshness_reanchor_max_attempts == kUnsetSetting) {
    const int64_t b =
        b_set ? std::max<int64_t>(1, c.freshness_reanchor_budget) : 4;
    c.freshness_reanchor_max_attempts =
        std::min<int64_t>(2, std::max<int64_t>(1, spare / b));
    if (b_set && c.freshness_reanchor_budget >= 1 &&
        c.freshness_reanchor_budget <= freshness::kMaxCeremonies &&
        spare >= 1) {
      c.freshness_reanchor_budget =
          std::min(c.freshness_reanchor_budget,
                   spare / c.freshness_reanchor_max_attempts);
    }
  }
  if (!b_set) {
    c.freshness_reanchor_budget = std::clamp<int64_t>(
        spare / std::max<int64_t>(1, c.freshness_reanchor_max_attempts), 1, 4);
  }
}

}  // namespace

absl::StatusOr<uint32_t> VaultConfig::CeremonyMaxAttempts(uint32_t given,
                                                          bool checked) const {
  const auto k = static_cast<uint32_t>(freshness_reanchor_max_attempts);
  const uint32_t v = given == 0 ? k : given;
  if (!checked) return v;
  BKV_RETURN_IF_ERROR(freshness::CheckMaxAttempts(v, attempt_limit));
  if (v > k) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-attempts ", given,
        " is above [freshness] reanchor_max_attempts (", k,
        "), the most a re-anchored record may keep: reanchor_budget x K stays "
        "below attempt_limit so that a shard's ceremonies give at most one "
        "more budget; raise the setting on every member if the bound allows "
        "(docs/rollback.md \"The lifetime budget\")"));
  }
  return v;
}

absl::StatusOr<VaultConfig> LoadParsedConfig(const ConfigArgs& args) {
  VaultConfig c;
  // Unset, they follow attempt_limit (ResolveReanchor).
  c.freshness_reanchor_budget = kUnsetSetting;
  c.freshness_reanchor_max_attempts = kUnsetSetting;
  if (!args.config_file.empty()) {
    BKV_RETURN_IF_ERROR(LoadToml(args.config_file, c));
  }
  for (const auto& [name, value] : args.values) {
    for (const Option& o : kOptions) {
      if (name == o.flag) BKV_RETURN_IF_ERROR(SetFromString(c, o, value));
    }
  }
  ResolveReanchor(c);
  BKV_RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<VaultConfig> LoadConfig(std::span<const std::string> args) {
  CLI::App app("", "serve");
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  ConfigArgs parsed;
  AddConfigFlags(app, parsed);
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  return LoadParsedConfig(parsed);
}

namespace {

std::string DefaultOf(const Option& o) {
  static const VaultConfig defaults;
  std::string def = std::visit(
      [&](auto field) -> std::string {
        using T = std::remove_cvref_t<decltype(defaults.*field)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return defaults.*field;
        } else if constexpr (std::is_same_v<T, bool>) {
          return defaults.*field ? "true" : "false";
        } else {
          return absl::StrCat(defaults.*field);
        }
      },
      o.field);
  return def.empty() ? "(empty)" : def;
}

// INT, NUM, TEXT: what a setting's flag takes; bools take nothing or =BOOL.
const char* TypeOf(const Option& o) {
  if (std::holds_alternative<int64_t VaultConfig::*>(o.field)) return "INT";
  if (std::holds_alternative<double VaultConfig::*>(o.field)) return "NUM";
  return "TEXT";
}

}  // namespace

void AddConfigFlags(CLI::App& cmd, ConfigArgs& args) {
  cmdline::NeedsValue(
      cmd.add_option("--config", args.config_file,
                     "settings file: [table] key = value per setting below; "
                     "flags win over it")
          ->type_name("FILE"));
  for (const Option& o : kOptions) {
    const std::string name = absl::StrCat("--", o.flag);
    const std::string help = absl::StrCat(o.help, " ([", o.table, "] ", o.key,
                                          "; default: ", DefaultOf(o), ")");
    const bool is_bool = std::holds_alternative<bool VaultConfig::*>(o.field);
    CLI::Option* opt =
        is_bool ? cmd.add_flag(name, help)
                : cmdline::NeedsValue(
                      cmd.add_option(name, help)->type_name(TypeOf(o)));
    opt->group(absl::StrCat("[", o.table, "] settings"));
    opt->each([&args, flag = std::string(o.flag)](const std::string& v) {
      args.values[flag] = v;
    });
  }
}

std::vector<std::string> ConfigFlags() {
  std::vector<std::string> flags;
  for (const Option& o : kOptions) flags.push_back(o.flag);
  return flags;
}

}  // namespace bkv::server
