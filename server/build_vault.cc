#include "server/build_vault.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "freshness/member_change.h"
#include "hsm/ake_key_pair.h"
#include "hsm/pin.h"
#include "hsm/self_test.h"
#include "hsm/softhsm_dev.h"
#include "server/cluster_form.h"
#include "server/log.h"
#include "server/opaque_self_test.h"
#include "server/quorum_config.h"
#include "storage/rocksdb_record_store.h"
#if BKV_HAVE_ETCD
#include "server/elected_owner.h"
#include "storage/etcd_shards.h"
#endif

namespace bkv::server {
namespace {

absl::Status MakeDir(const std::string& dir) {
  std::string path;
  for (absl::string_view part : absl::StrSplit(dir, '/')) {
    path = path.empty() && dir[0] == '/'
               ? absl::StrCat("/", part)
               : (path.empty() ? std::string(part)
                               : absl::StrCat(path, "/", part));
    if (part.empty() || part == ".") continue;
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot create directory ", path, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

// "<kid> <hex public key>" per line; '#' comments.
absl::StatusOr<std::vector<IssuerKey>> ReadIssuerKeys(const std::string& path) {
  BKV_ASSIGN_OR_RETURN(std::string text, ReadTextFile(path));
  std::vector<IssuerKey> keys;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    auto pk =
        parts.size() == 2
            ? HexDecode(std::string_view(parts[1].data(), parts[1].size()))
            : absl::InvalidArgumentError("");
    if (!pk.ok() || pk->size() != 32) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line_no,
          ": expected `<kid> <64 hex digits Ed25519 public key>`"));
    }
    IssuerKey k{std::string(parts[0]), {}};
    std::copy(pk->begin(), pk->end(), k.public_key.begin());
    keys.push_back(std::move(k));
  }
  if (keys.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no issuer keys"));
  }
  return keys;
}

// The development issuer: a key pair under data_dir, made on first start.
absl::Status EnsureDevIssuer(const VaultConfig& c) {
  if (::access(c.DevIssuerKeyPath().c_str(), F_OK) == 0)
    return absl::OkStatus();
  Ed25519KeyPair kp = GenerateEd25519KeyPair();
  std::string secret_hex = HexEncode(kp.secret_key.Reveal()) + "\n";
  absl::Status written = WriteSecretFile(c.DevIssuerKeyPath(), secret_hex);
  OPENSSL_cleanse(secret_hex.data(), secret_hex.size());
  BKV_RETURN_IF_ERROR(written);
  BKV_RETURN_IF_ERROR(WriteSecretFile(
      c.DevIssuerKeysPath(),
      absl::StrCat("# development issuer: bkv-vault token mint\ndev ",
                   HexEncode(kp.public_key), "\n")));
  Log("warn", "dev_issuer_created",
      {{"path", c.DevIssuerKeysPath()},
       {"note",
        "development token issuer; configure issuer_keys_file in "
        "production"}});
  return absl::OkStatus();
}

// Once RocksDB has made its CURRENT file (or the key check file exists)
// the token's keys are what the data depends on, and none may be made anew.
// Records on etcd are shared by every node: a node never knows them to be
// absent, so it never makes keys (they come from `bkv-vault hsm init`).
bool HoldsRecords(const VaultConfig& c) {
  if (c.UsesEtcd()) return true;
  return ::access((c.RecordsDir() + "/CURRENT").c_str(), F_OK) == 0 ||
         ::access(c.KeyCheckPath().c_str(), F_OK) == 0;
}

absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenToken(
    const ComponentOptions& o, bool holds_records) {
  HsmFlags flags = o.hsm;
  const bool dev = !hsm::PinConfigured(flags.pin_file);
  if (dev && !o.dev) {
    return absl::FailedPreconditionError(
        "no HSM PIN: set [hsm] pin_file (mode 0600) or $BKV_HSM_PIN for the "
        "vault's token; for a development vault with a generated SoftHSM "
        "token under data_dir pass --dev");
  }
  std::shared_ptr<hsm::Pkcs11Hsm> token;
  if (!dev) {
    BKV_ASSIGN_OR_RETURN(token, OpenHsm(flags));
  } else {
    // Development: a SoftHSM token under data_dir, made with its keys on
    // first start. Never over records: a new seed would turn every right
    // password into a wrong one.
    flags.softhsm_dir = o.softhsm_dir;
    BKV_ASSIGN_OR_RETURN(
        hsm::SoftHsmDevToken dev_token,
        hsm::PrepareSoftHsmDir(flags.softhsm_dir, flags.token_label,
                               flags.module_path,
                               /*allow_create=*/!holds_records));
    BKV_ASSIGN_OR_RETURN(token, OpenHsm(flags));
    if (!holds_records) {
      BKV_ASSIGN_OR_RETURN(hsm::CeremonyReport report,
                           hsm::RunKeyCeremony(*token, hsm::CeremonyOptions{}));
      if (dev_token.token_created) {
        Log("warn", "dev_token_created",
            {{"dir", flags.softhsm_dir},
             {"server_public_key", HexEncode(report.ake_public_key)},
             {"fingerprint", report.ake_fingerprint_hex}});
      }
    }
  }
  BKV_RETURN_IF_ERROR(hsm::RequireAllKeys(*token));
  return token;
}

// The keys on the token must be the ones the records were made with
// (hsm/key_ceremony.h, MakeKeyCheck). The check file is written when the
// first start made the keys, or, for a data directory older than the file,
// once from the keys found (logged).
absl::Status CheckKeysMatchRecords(const std::string& path,
                                   const hsm::VaultKeys& keys,
                                   const std::string& token_description,
                                   bool holds_records) {
  if (::access(path.c_str(), F_OK) == 0) {
    BKV_ASSIGN_OR_RETURN(std::string check, ReadTextFile(path));
    return hsm::VerifyKeyCheck(keys, check, token_description);
  }
  BKV_ASSIGN_OR_RETURN(std::string check, hsm::MakeKeyCheck(keys));
  const std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  BKV_RETURN_IF_ERROR(WriteSecretFile(tmp, check));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  if (holds_records) {
    Log("warn", "key_check_created",
        {{"path", path},
         {"note",
          "no key check file in this data directory (records that predate "
          "it, or a new node of an etcd cluster); the keys now on the token "
          "were taken as the right ones: compare this file with the other "
          "nodes'"}});
  }
  return absl::OkStatus();
}

// Fails start-up early, and clearly, when the data directory cannot be
// written (a read-only mount), instead of at the first chmod or record.
absl::Status CheckWritable(const std::string& dir) {
  const std::string probe = dir + "/.bkv-write-probe";
  int fd =
      ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EROFS) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", dir,
          " is on a read-only file system: the vault writes its records, "
          "audit log and token there. Mount it read-write, or point "
          "--data-dir at a writable directory"));
    }
    if (err == EACCES || err == EPERM) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", dir, " is not writable by this user (",
          std::strerror(err),
          "): give the vault's user ownership of it (mode 0700), or point "
          "--data-dir at a writable directory"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write in data directory ", dir, ": ", std::strerror(err)));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return absl::OkStatus();
}

// The store `o` names. The sealer must outlive it.
absl::StatusOr<std::unique_ptr<storage::RecordStore>> OpenStore(
    const ComponentOptions::Store& o, const Sealer& sealer) {
  // Non-owning: the node owns the sealer and destroys it after the store.
  std::shared_ptr<const Sealer> borrowed(std::shared_ptr<void>(), &sealer);
  if (o.etcd) {
#if BKV_HAVE_ETCD
    std::vector<storage::EtcdRecordStoreOptions> clusters;
    for (const std::vector<std::string>& endpoints : o.etcd_clusters) {
      clusters.push_back(o.etcd_options);
      clusters.back().endpoints = endpoints;
    }
    return storage::OpenEtcdShards(clusters, std::move(borrowed));
#else
    return absl::FailedPreconditionError(
        "this bkv-vault was built without etcd (BKV_WITH_ETCD=OFF): use "
        "storage = rocksdb, or a build with etcd");
#endif
  }
  BKV_RETURN_IF_ERROR(MakeDir(o.records_dir));
  storage::RocksDbRecordStoreOptions options;
  options.data_dir = o.records_dir;
  options.shred_retry_ms = o.shred_retry_ms;
  BKV_ASSIGN_OR_RETURN(auto store, storage::RocksDbRecordStore::Open(
                                       options, std::move(borrowed)));
  return std::unique_ptr<storage::RecordStore>(std::move(store));
}

// Accounts whose shred is owed (failed, or cut short by a crash; retried every
// [storage] shred_retry_s): docs/storage.md, "Shred on RocksDB".
void RenderShredQueue(const storage::RocksDbRecordStore& store,
                      std::string& out) {
  auto stats = store.Stats();
  if (!stats.ok()) return;
  absl::StrAppend(&out,
                  "# HELP bkv_shred_queue accounts whose superseded record "
                  "copies still await a shred (retried every shred_retry_s).\n"
                  "# TYPE bkv_shred_queue gauge\nbkv_shred_queue ",
                  stats->queued_shreds, "\n");
}

// Logs `s` under `event` when it failed; returns it.
absl::Status Logged(absl::string_view event, absl::Status s) {
  if (!s.ok()) Log("error", event, {{"error", std::string(s.ToString())}});
  return s;
}

#define BKV_BUILD_STEP(event, expr) BKV_RETURN_IF_ERROR(Logged(event, (expr)))

// The token, its keys (self-tested and matched to the records) and the
// instrumented wrappers every other component uses.
absl::Status BuildKeys(const VaultConfig& c, VaultNode& n) {
  const ComponentOptions& o = n.options;
  const bool holds_records = HoldsRecords(c);
  auto token = OpenToken(o, holds_records);
  BKV_BUILD_STEP("hsm_unavailable", token.status());
  n.token = *std::move(token);
  auto keys = hsm::VaultKeys::Load(n.token);
  BKV_BUILD_STEP("hsm_keys_missing", keys.status());
  n.keys.emplace(*std::move(keys));
  BKV_BUILD_STEP("self_test_failed", hsm::RunTokenSelfTests(*n.token, *n.keys));
  BKV_BUILD_STEP("hsm_keys_mismatch",
                 CheckKeysMatchRecords(o.key_check, *n.keys,
                                       n.token->Describe(), holds_records));
  n.sealer.emplace(n.keys->sealer, n.metrics);
  n.oprf_seed.emplace(n.keys->oprf_seed, n.metrics);
  n.ticket_sealer.emplace(*n.oprf_seed);
  auto server_keys = opaque::ServerKeyPair::FromPrivateKey(
      n.keys->ake.RevealPrivateKey().Reveal());
  BKV_BUILD_STEP("hsm_keys_invalid", server_keys.status());
  n.server_keys.emplace(*std::move(server_keys));
  return absl::OkStatus();
}

// The audit log, keyed by a value derived once from the seed under a label
// no OPRF or fake-record derivation can produce (those end in "OprfKey" / a
// counter), and the record store.
absl::StatusOr<SecretBytes> AuditKey(const hsm::TokenKeyedHash& seed) {
  return seed.HmacSha512(
      AsBytes(std::string_view("bkv-vault/audit-account-key/v1\x00", 32)));
}

absl::Status BuildStorage(VaultNode& n) {
  auto audit_key = AuditKey(n.keys->oprf_seed);
  BKV_BUILD_STEP("hsm_unavailable", audit_key.status());
  auto audit = FileAuditLog::Open(n.options.audit_log, *std::move(audit_key));
  BKV_BUILD_STEP("audit_log_unavailable", audit.status());
  n.audit = *std::move(audit);
  auto store = OpenStore(n.options.store, *n.sealer);
  BKV_BUILD_STEP("storage_unavailable", store.status());
  n.store = *std::move(store);
  return absl::OkStatus();
}

void LogFreshness(absl::string_view level, absl::string_view event,
                  std::initializer_list<LogField> fields) {
  if (event == "freshness_stale_record") {
    LogSampled(level, event, event, fields);  // one per read: a flood
  } else {
    Log(level, event, fields);
  }
}

// The freshness layer's options: the same for every store it wraps.
freshness::FreshnessOptions FreshOptions(const ComponentOptions& o) {
  return {o.store.shards, LogFreshness, o.store.ceremonies,
          o.vault.limits.attempt_limit};
}

void RenderFreshness(const freshness::FreshnessStats& s, std::string& out) {
  absl::StrAppend(
      &out,
      "# HELP bkv_freshness_head_writes_total HSM writes of the freshness "
      "heads.\n# TYPE bkv_freshness_head_writes_total counter\n"
      "bkv_freshness_head_writes_total ",
      s.head_writes,
      "\n# HELP bkv_freshness_records_committed_total Record writes the "
      "heads covered.\n# TYPE bkv_freshness_records_committed_total "
      "counter\nbkv_freshness_records_committed_total ",
      s.records_committed,
      "\n# HELP bkv_freshness_stale_reads_total Reads refused as not "
      "provably fresh.\n# TYPE bkv_freshness_stale_reads_total counter\n"
      "bkv_freshness_stale_reads_total ",
      s.stale_reads,
      "\n# HELP bkv_freshness_shard_stale 1: the shard's records do not "
      "match its head; restore the store or re-anchor.\n# TYPE "
      "bkv_freshness_shard_stale gauge\n");
  for (size_t i = 0; i < s.shard_stale.size(); ++i) {
    absl::StrAppend(&out, "bkv_freshness_shard_stale{shard=\"", i, "\"} ",
                    s.shard_stale[i] ? 1 : 0, "\n");
  }
}

// Which way the token takes head writes, once known (docs/rollback.md
// "Slots"): decided by the first head write on a token without slots.
void LogHeadPath(hsm::AnchoredObject::Path path, absl::string_view reason) {
  const bool in_place = path == hsm::AnchoredObject::Path::kInPlace;
  Log(in_place ? "info" : "warn", "anchored_object_path",
      {{"path", in_place ? "in_place" : "create_destroy"},
       {"reason", std::string(reason)}});
}

void RenderHeadPath(hsm::AnchoredObject::Path path, std::string& out) {
  if (path == hsm::AnchoredObject::Path::kUnknown) return;
  absl::StrAppend(
      &out,
      "# HELP bkv_hsm_anchored_in_place 1: the freshness heads are rewritten "
      "in place in two token slots; 0: a token object is created and "
      "destroyed per head write.\n# TYPE bkv_hsm_anchored_in_place gauge\n"
      "bkv_hsm_anchored_in_place ",
      path == hsm::AnchoredObject::Path::kInPlace ? 1 : 0, "\n");
}

// The first take-over waits, bounded, for a majority of endorsers: the
// nodes of a cluster start in any order.
absl::StatusOr<std::unique_ptr<freshness::FreshRecordStore>> OpenFresh(
    VaultNode& n, freshness::HeadStore& heads) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (int round = 0;; ++round) {
    auto fresh = freshness::FreshRecordStore::Open(*n.store, heads,
                                                   FreshOptions(n.options));
    if (fresh.ok() || n.quorum == nullptr ||
        !absl::IsUnavailable(fresh.status()) || absl::Now() > deadline ||
        round >= 60) {
      return fresh;
    }
    Log("warn", "freshness_quorum_waiting",
        {{"error", std::string(fresh.status().message())},
         {"hint", "start the other members' vaults (a majority must answer)"}});
    absl::SleepFor(absl::Seconds(1));
  }
}

// Every member of a quorum over etcd campaigns for the owner lease; the
// one holding it takes over and serves (docs/rollback.md "Election").
absl::Status BuildElected(VaultNode& n) {
#if BKV_HAVE_ETCD
  // One cluster (config.cc refuses several with a quorum): the store itself.
  auto* etcd = dynamic_cast<storage::EtcdRecordStore*>(n.store.get());
  if (etcd == nullptr) {
    BKV_BUILD_STEP("config_invalid",
                   absl::FailedPreconditionError(
                       "an elected quorum owner needs one etcd cluster"));
  }
  auto check = hsm::MakeKeyCheck(*n.keys);
  BKV_BUILD_STEP("hsm_keys_invalid", check.status());
  const hsm::VaultKeys* keys = &*n.keys;  // lives as long as the node
  auto elected = ElectedOwner::Start(
      *n.quorum, *etcd, n.options.store.etcd_options.key_prefix + "fresh/owner",
      FreshOptions(n.options),
      {*std::move(check), [keys](absl::string_view c) {
         return hsm::VerifyKeyCheck(*keys, c, "this node's token");
       }});
  ElectedOwner* e = elected.get();
  n.elected = std::move(elected);
  n.timed_store.emplace(*n.elected, n.metrics);
  n.metrics.SetCollector([e](std::string& out) {
    if (auto stats = e->FreshStats()) RenderFreshness(*stats, out);
    e->RenderMetrics(out);
  });
  return absl::OkStatus();
#else
  (void)n;
  return absl::FailedPreconditionError(
      "this bkv-vault was built without etcd (BKV_WITH_ETCD=OFF)");
#endif
}

// Form3 review finding 1: where one lost member leaves fewer hand-overs
// than the carry bound (3 members), each replacement re-anchors every shard
// and spends one of its B lifetime re-anchors. A warning: tests and labs
// run 3.
void WarnBelowBoundOnLoss(const freshness::Members& m) {
  if (m.all().size() - 1 >= freshness::CarryBound(m)) return;
  Log("warn", "freshness_members_replacement_costly",
      {{"members", absl::StrCat(m.all().size())},
       {"hint",
        "a member lost for good leaves fewer hand-overs than the carry "
        "bound: each replacement caps every account at K attempts and "
        "spends one of every shard's B lifetime re-anchors ([freshness] "
        "reanchor_budget); run 5 members (docs/operations.md \"Replacing a "
        "node\")"}});
}

// Recovery review finding 3 (quorum members) and review of branch slots
// finding 1 (single node): the development token's SoftHSM does not fsync,
// so a power cut can take its newest heads; a warning, not a refusal
// (tests, laptops). True when it warned.
bool WarnUnsyncedToken(const ComponentOptions& o) {
  if (!o.dev || TokenStorageSynchronous(o.softhsm_dir)) return false;
  Log("warn", "freshness_token_storage_unsynced",
      {{"dir", o.softhsm_dir},
       {"hint",
        "SoftHSM does not fsync: mount the token directory sync or run "
        "`chattr -R +S` on it (or use a real HSM); a power cut can take the "
        "newest heads, and with the storage put back to match, the attempts "
        "counted under them (docs/rollback.md \"Slots\", power loss)"}});
  return true;
}

// A quorum node: its endorser on the peer port; the owner writes its heads
// through the quorum, the others refuse account calls.
absl::Status BuildQuorum(const VaultConfig& c, VaultNode& n) {
  auto settings = LoadQuorumSettings(c);
  BKV_BUILD_STEP("config_invalid", settings.status());
  // Membership is the token's (`cluster form`); the file must agree.
  BKV_BUILD_STEP("members_not_formed", UseFormedMembers(n.token, *settings));
  BKV_BUILD_STEP("config_invalid", CheckCandidacy(*settings));
  WarnBelowBoundOnLoss(settings->members);
  auto quorum = StartQuorumNode(*std::move(settings), n.token);
  BKV_BUILD_STEP("quorum_unavailable", quorum.status());
  n.quorum = *std::move(quorum);
  n.quorum->token_storage_unsynced = WarnUnsyncedToken(n.options);
  if (n.quorum->heads != nullptr) return absl::OkStatus();
  if (c.ElectsOwner()) return BuildElected(n);
  n.standby = MakeStandbyRecordStore();
  n.timed_store.emplace(*n.standby, n.metrics);
  QuorumNode* q = n.quorum.get();
  n.metrics.SetCollector([q](std::string& out) { q->RenderMetrics(out); });
  return absl::OkStatus();
}

// Every read proven fresh against the heads in the token, or endorsed by
// the quorum (docs/rollback.md).
absl::Status BuildFreshness(const VaultConfig& c, VaultNode& n) {
  const ComponentOptions::Store& o = n.options.store;
  if (c.UsesQuorum()) {
    BKV_RETURN_IF_ERROR(BuildQuorum(c, n));
    if (n.standby != nullptr || n.elected != nullptr) return absl::OkStatus();
    auto fresh = OpenFresh(n, *n.quorum->heads);
    BKV_BUILD_STEP("freshness_unavailable", fresh.status());
    n.fresh = *std::move(fresh);
    n.timed_store.emplace(*n.fresh, n.metrics);
    freshness::FreshRecordStore* f = n.fresh.get();
    QuorumNode* q = n.quorum.get();
    n.metrics.SetCollector([f, q](std::string& out) {
      RenderFreshness(f->Stats(), out);
      q->RenderMetrics(out);
    });
    return absl::OkStatus();
  }
  auto heads = freshness::TokenHeadStore::Open(n.token);
  BKV_BUILD_STEP("hsm_unavailable", heads.status());
  n.heads = *std::move(heads);
  n.heads->SetPathListener(LogHeadPath);
  const bool unsynced = o.anchor && WarnUnsyncedToken(n.options);
  if (!o.anchor) {
    // Records written unanchored would make every shard stale once
    // anchoring is back on: a token that anchors refuses to stop.
    auto table = n.heads->Read();
    BKV_BUILD_STEP("hsm_unavailable", table.status());
    if (table->has_value()) {
      BKV_BUILD_STEP(
          "freshness_unavailable",
          absl::FailedPreconditionError(
              "this token anchors the records (it holds freshness heads) "
              "but the configuration turns anchoring off "
              "(storage = etcd without freshness_single_node): set "
              "freshness_single_node = true, or use a token without heads"));
    }
    Log("warn", "freshness_not_anchored",
        {{"note",
          "storage = etcd without freshness_single_node: records are not "
          "anchored in the HSM, so a restored etcd snapshot gives back "
          "attempts (docs/rollback.md, quorum not built yet)"}});
    n.timed_store.emplace(*n.store, n.metrics);
    return absl::OkStatus();
  }
  auto fresh = freshness::FreshRecordStore::Open(*n.store, *n.heads,
                                                 FreshOptions(n.options));
  BKV_BUILD_STEP("freshness_unavailable", fresh.status());
  n.fresh = *std::move(fresh);
  n.timed_store.emplace(*n.fresh, n.metrics);
  freshness::FreshRecordStore* f = n.fresh.get();
  freshness::TokenHeadStore* h = n.heads.get();
  const auto* rocks = dynamic_cast<storage::RocksDbRecordStore*>(n.store.get());
  n.metrics.SetCollector([f, h, unsynced, rocks](std::string& out) {
    RenderFreshness(f->Stats(), out);
    RenderHeadPath(h->path(), out);
    RenderTokenStorageUnsynced(unsynced, out);
    if (rocks != nullptr) RenderShredQueue(*rocks, out);
  });
  return absl::OkStatus();
}

absl::Status BuildVerifier(const VaultConfig& c, VaultNode& n) {
  const ComponentOptions& o = n.options;
  std::string keys_file = o.issuer_keys_file;
  if (keys_file.empty() && !o.dev) {
    BKV_BUILD_STEP(
        "config_invalid",
        absl::FailedPreconditionError(
            "no issuer_keys_file: a vault verifies account tokens with the "
            "messaging service's public keys ([auth] issuer_keys_file); for "
            "a development vault on this machine pass --dev"));
  }
  if (keys_file.empty()) {
    BKV_BUILD_STEP("startup_failed", EnsureDevIssuer(c));
    keys_file = o.dev_issuer_keys;
  }
  auto issuer_keys = ReadIssuerKeys(keys_file);
  BKV_BUILD_STEP("config_invalid", issuer_keys.status());
  auto verifier = TokenVerifier::Create(
      TokenPolicy{*std::move(issuer_keys), o.audience, o.issuer});
  BKV_BUILD_STEP("config_invalid", verifier.status());
  n.verifier = *std::move(verifier);
  return absl::OkStatus();
}

absl::Status BuildService(VaultNode& n) {
  const ComponentOptions& o = n.options;
  n.opaque_server.emplace(o.opaque, *n.oprf_seed, *n.server_keys);
  Vault::Options vault_options = o.vault;
  if (!vault_options.realm_id.empty()) {
    vault_options.realm_keys = &*n.server_keys;  // the pinned identity key
  }
  n.vault.emplace(vault_options, *n.opaque_server, *n.timed_store,
                  *n.ticket_sealer, *n.audit, n.metrics);
  n.read_limits.emplace(o.limits.read);
  n.guess_limits.emplace(o.limits.guess);
  n.call_limits.emplace(o.limits.call);
  n.peer_limits.emplace(o.limits.peer);
  n.unauthenticated_limits.emplace(o.limits.unauthenticated);
  auto trusted_proxies = ParseTrustedProxies(o.limits.trusted_proxies);
  BKV_BUILD_STEP("config_invalid", trusted_proxies.status());
  vault::v1::GetVaultInfoResponse info = o.info;
  const auto& pk = n.keys->ake.public_key();
  info.set_server_public_key(std::string(pk.begin(), pk.end()));
  n.service.emplace(
      *n.vault, *n.verifier,
      ServiceLimits{*n.read_limits, *n.guess_limits, *n.call_limits,
                    *n.peer_limits, *n.unauthenticated_limits,
                    *std::move(trusted_proxies)},
      std::move(info), n.metrics);
  return absl::OkStatus();
}

}  // namespace

absl::Status TestHookAllowed(const VaultConfig& c, absl::string_view hook,
                             absl::string_view what) {
  const char* pin = std::getenv("BKV_HSM_PIN");
  const bool real = !c.hsm_pin_file.empty() || !c.issuer_keys_file.empty() ||
                    (pin != nullptr && *pin != '\0');
  if (!c.dev || real) {
    return absl::FailedPreconditionError(absl::StrCat(
        hook, " is a test hook that ", what,
        "; it is refused without --dev, and with a configured HSM PIN or "
        "issuer_keys_file: unset it"));
  }
  return absl::OkStatus();
}

absl::Status WriteSecretFile(const std::string& path, absl::string_view text) {
  // O_EXCL|O_NOFOLLOW: a planted file or symlink at the path is refused.
  int fd = ::open(path.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create ", path, ": ", std::strerror(errno),
        " (it must not exist yet; use a directory only you can write)"));
  }
  bool ok = ::write(fd, text.data(), text.size()) ==
                static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok) {
    ::unlink(path.c_str());  // nothing half-written stays behind
    return absl::InternalError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ComponentOptions ComponentOptionsFor(const VaultConfig& c) {
  ComponentOptions o;
  o.listener = {c.listen,
                c.metrics_listen,
                c.tls_cert,
                c.tls_key,
                c.allow_plaintext_non_loopback,
                c.drain_timeout_s,
                c.max_message_bytes};
  o.hsm.module_path = c.hsm_module;
  o.hsm.token_label = c.hsm_token_label;
  o.hsm.pin_file = c.hsm_pin_file;
  o.dev = c.dev;
  o.hsm.sessions = static_cast<size_t>(c.hsm_sessions);
  o.data_dir = c.data_dir;
  o.softhsm_dir = c.SoftHsmDir();
  o.store.etcd = c.UsesEtcd();
  o.store.records_dir = c.RecordsDir();
  o.store.shred_retry_ms = static_cast<uint32_t>(c.shred_retry_s * 1000);
  o.store.etcd_clusters = c.EtcdClusters();
  o.store.etcd_options.key_prefix = c.etcd_key_prefix;
  o.store.etcd_options.ca_file = c.etcd_ca_file;
  o.store.etcd_options.cert_file = c.etcd_cert_file;
  o.store.etcd_options.key_file = c.etcd_key_file;
  o.store.etcd_options.insecure = c.etcd_insecure;
  o.store.etcd_options.call_timeout =
      absl::Milliseconds(c.etcd_call_timeout_ms);
  o.store.etcd_options.op_timeout = absl::Milliseconds(c.etcd_op_timeout_ms);
  o.store.anchor = c.AnchorsRecords();
  o.store.shards = static_cast<uint32_t>(c.freshness_shards);
  o.store.ceremonies = static_cast<uint32_t>(c.freshness_reanchor_budget);
  o.store.max_attempts =
      static_cast<uint32_t>(c.freshness_reanchor_max_attempts);
  o.quorum = {c.freshness_members_file,   c.freshness_node_id,
              c.freshness_peer_listen,    c.freshness_endorse_timeout_ms,
              c.freshness_owner,          c.freshness_owner_lease_ttl_s,
              c.freshness_peer_cert_file, c.freshness_peer_key_file,
              c.freshness_peer_ca_file,   c.freshness_owner_candidate};
  o.audit_log = c.AuditLogPath();
  o.key_check = c.KeyCheckPath();
  o.issuer_keys_file = c.issuer_keys_file;
  o.dev_issuer_key = c.DevIssuerKeyPath();
  o.dev_issuer_keys = c.DevIssuerKeysPath();
  o.audience = c.audience;
  o.issuer = c.issuer;
  o.opaque.context = c.opaque_context;
  if (!c.server_identity.empty()) o.opaque.server_identity = c.server_identity;
  o.vault.limits = {static_cast<uint32_t>(c.attempt_limit),
                    c.login_ttl_s * 1000};
  o.vault.limits.min_ksf_memory_kib =
      static_cast<uint32_t>(c.min_ksf_memory_kib);
  o.vault.limits.reset_delay_ms = c.reset_delay_s * 1000;
  o.limits.read = {c.read_burst, c.read_per_second};
  o.limits.guess = {c.guess_burst, c.guess_per_second};
  o.limits.call = {c.account_burst, c.account_per_second};
  o.limits.peer = {c.peer_burst, c.peer_per_second};
  o.limits.unauthenticated = {c.unauthenticated_burst,
                              c.unauthenticated_per_second};
  o.limits.trusted_proxies = c.trusted_proxies;
  // GetVaultInfo: everything a client must agree with. Argon2id's
  // structural floors (t, p >= 1) and this vault's memory floor.
  o.vault.realm_id = c.realm_id;
  o.vault.pending_ttl_ms = c.pending_ttl_s * 1000;
  o.info.set_protocol_version(c.realm_id.empty()
                                  ? vault::v1::PROTOCOL_VERSION_2
                                  : vault::v1::PROTOCOL_VERSION_3);
  o.info.set_realm_id(c.realm_id);
  o.info.set_opaque_context(c.opaque_context);
  o.info.set_server_identity(c.server_identity);
  o.info.set_attempt_limit(static_cast<uint32_t>(c.attempt_limit));
  o.info.mutable_min_ksf()->set_iterations(1);
  o.info.mutable_min_ksf()->set_memory_kib(
      static_cast<uint32_t>(c.min_ksf_memory_kib));
  o.info.mutable_min_ksf()->set_parallelism(1);
  o.info.set_reset_delay_ms(static_cast<uint64_t>(c.reset_delay_s) * 1000);
  return o;
}

namespace {
std::string ClustersForTesting(
    const std::vector<std::vector<std::string>>& clusters) {
  std::vector<std::string> parts;
  for (const auto& c : clusters) parts.push_back(absl::StrJoin(c, ","));
  return absl::StrJoin(parts, ";");
}
}  // namespace

std::string DescribeForTesting(const ComponentOptions& o) {
  const auto& l = o.listener;
  const auto& e = o.store.etcd_options;
  auto limiter = [](const RateLimiter::Options& r) {
    return absl::StrCat(r.burst, "/", r.per_second, "/", r.max_keys_per_shard);
  };
  return absl::StrCat(
      "listen=", l.listen, "\nmetrics_listen=", l.metrics_listen,
      "\ntls=", l.tls_cert, ",", l.tls_key,
      "\nplaintext_non_loopback=", l.plaintext_non_loopback,
      "\ndrain_timeout_s=", l.drain_timeout_s,
      "\nmax_message_bytes=", l.max_message_bytes, "\nhsm=", o.hsm.module_path,
      ",", o.hsm.token_label, ",", o.hsm.pin_file, ",", o.hsm.sessions,
      "\ndev=", o.dev, "\ndata_dir=", o.data_dir,
      "\nsofthsm_dir=", o.softhsm_dir,
      "\nstore=", o.store.etcd ? "etcd" : "rocksdb", ",", o.store.records_dir,
      ",", o.store.shred_retry_ms,
      "\netcd=", ClustersForTesting(o.store.etcd_clusters), ",", e.key_prefix,
      ",", e.ca_file, ",", e.cert_file, ",", e.key_file, ",", e.insecure, ",",
      absl::FormatDuration(e.call_timeout), ",",
      absl::FormatDuration(e.op_timeout), "\nfreshness=", o.store.anchor, ",",
      o.store.shards, ",", o.store.ceremonies, ",", o.store.max_attempts,
      "\nquorum=", o.quorum.members_file, ",", o.quorum.node_id, ",",
      o.quorum.peer_listen, ",", o.quorum.endorse_timeout_ms, ",",
      o.quorum.owner, ",", o.quorum.owner_lease_ttl_s, ",",
      o.quorum.peer_cert_file, ",", o.quorum.peer_key_file, ",",
      o.quorum.peer_ca_file, ",", o.quorum.owner_candidate,
      "\naudit_log=", o.audit_log, "\nkey_check=", o.key_check,
      "\nissuer_keys_file=", o.issuer_keys_file,
      "\ndev_issuer=", o.dev_issuer_key, ",", o.dev_issuer_keys,
      "\ntoken_policy=", o.audience, ",", o.issuer,
      "\nopaque=", o.opaque.context, ",", o.opaque.server_identity.value_or(""),
      "\nvault=", o.vault.limits.attempt_limit, ",",
      o.vault.limits.login_ttl_ms, ",", o.vault.limits.min_ksf_memory_kib, ",",
      o.vault.limits.reset_delay_ms, ",", o.vault.realm_id, ",",
      o.vault.pending_ttl_ms, "\nlimits=", limiter(o.limits.read), " ",
      limiter(o.limits.guess), " ", limiter(o.limits.call), " ",
      limiter(o.limits.peer), " ", limiter(o.limits.unauthenticated), " ",
      o.limits.trusted_proxies, "\ninfo=", o.info.ShortDebugString(), "\n");
}

// BKV_TEST_HOLD_GUARDED_WRITE (docs/rollback.md, finding 13): a test hook
// that holds guarded etcd writes in flight, honoured only by a --dev vault
// on its generated token and issuer (`dev` alone is no proof of a test:
// lease3 review finding 8).
absl::Status ApplyTestHooks(const VaultConfig& c, ComponentOptions& o) {
  const char* hold = std::getenv("BKV_TEST_HOLD_GUARDED_WRITE");
  if (hold == nullptr) return absl::OkStatus();
  BKV_RETURN_IF_ERROR(TestHookAllowed(c, "BKV_TEST_HOLD_GUARDED_WRITE",
                                      "delays record writes"));
  o.store.etcd_options.test_hold_file = hold;
  return absl::OkStatus();
}

namespace {

// BuildVault's steps from the data directory lock on.
absl::StatusOr<std::unique_ptr<VaultNode>> BuildLockedVault(
    const VaultConfig& c, std::unique_ptr<VaultNode> node) {
  // Self-tests first: nothing is served by a process that computes wrongly.
  BKV_BUILD_STEP("self_test_failed", RunOpaqueSelfTest());
  BKV_RETURN_IF_ERROR(BuildKeys(c, *node));
  BKV_RETURN_IF_ERROR(BuildStorage(*node));
  BKV_RETURN_IF_ERROR(BuildFreshness(c, *node));
  BKV_RETURN_IF_ERROR(BuildVerifier(c, *node));
  BKV_RETURN_IF_ERROR(BuildService(*node));
  return node;
}

absl::StatusOr<std::unique_ptr<VaultNode>> StartNode(const VaultConfig& c) {
  auto node = std::make_unique<VaultNode>();
  node->options = ComponentOptionsFor(c);
  BKV_BUILD_STEP("config_invalid", ApplyTestHooks(c, node->options));
  BKV_BUILD_STEP("startup_failed", MakeDir(c.data_dir));
  BKV_BUILD_STEP("startup_failed", CheckWritable(c.data_dir));
  return node;
}

}  // namespace

absl::StatusOr<std::unique_ptr<VaultNode>> BuildVault(const VaultConfig& c) {
  BKV_ASSIGN_OR_RETURN(auto node, StartNode(c));
  // One vault per data directory, held while the node lives.
  auto lock = DataDirLock::Acquire(c.data_dir);
  BKV_BUILD_STEP("data_dir_in_use", lock.status());
  node->data_dir_lock.emplace(*std::move(lock));
  return BuildLockedVault(c, std::move(node));
}

absl::StatusOr<std::unique_ptr<VaultNode>> BuildVault(const VaultConfig& c,
                                                      DataDirLock held) {
  BKV_ASSIGN_OR_RETURN(auto node, StartNode(c));
  node->data_dir_lock.emplace(std::move(held));
  return BuildLockedVault(c, std::move(node));
}

absl::StatusOr<std::string> TokenModulePath(const VaultConfig& c) {
  const bool dev = !hsm::PinConfigured(c.hsm_pin_file);
  if (dev) {
    BKV_ASSIGN_OR_RETURN(
        hsm::SoftHsmDevToken t,
        hsm::PrepareSoftHsmDir(c.SoftHsmDir(), c.hsm_token_label, c.hsm_module,
                               /*allow_create=*/false));
    return t.module_path;
  }
  if (!c.hsm_module.empty()) return c.hsm_module;
  return hsm::LocateSoftHsmModule();
}

absl::StatusOr<std::shared_ptr<hsm::Pkcs11Hsm>> OpenNodeToken(
    const VaultConfig& c) {
  BKV_RETURN_IF_ERROR(MakeDir(c.data_dir));
  return OpenToken(ComponentOptionsFor(c), HoldsRecords(c));
}

absl::StatusOr<std::unique_ptr<FileAuditLog>> OpenCeremonyAuditLog(
    const VaultConfig& c, std::shared_ptr<hsm::Pkcs11Hsm> token) {
  auto seed = hsm::TokenKeyedHash::Create(std::move(token));
  if (absl::IsNotFound(seed.status())) return nullptr;
  BKV_RETURN_IF_ERROR(seed.status());
  BKV_ASSIGN_OR_RETURN(SecretBytes key, AuditKey(*seed));
  return FileAuditLog::Open(ComponentOptionsFor(c).audit_log, std::move(key));
}

absl::StatusOr<std::unique_ptr<VaultNode>> BuildVaultStorage(
    const VaultConfig& c) {
  auto node = std::make_unique<VaultNode>();
  node->options = ComponentOptionsFor(c);
  BKV_RETURN_IF_ERROR(BuildKeys(c, *node));
  BKV_RETURN_IF_ERROR(BuildStorage(*node));
  return node;
}

#undef BKV_BUILD_STEP

}  // namespace bkv::server
