#include "storage/etcd_shards.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "crypto/hex.h"
#include "crypto/random.h"
#include "crypto/status_macros.h"
#include "storage/sharded_record_store.h"

namespace bkv::storage {
namespace {

using Shards = std::vector<std::unique_ptr<EtcdRecordStore>>;

constexpr absl::string_view kMapHead =
    "bkv-shard-map/v1 hash=jump64 deployment=";

std::string Name(const Shards& shards, size_t i) {
  return absl::StrCat("etcd cluster ", i, " of ", shards.size(), " ",
                      shards[i]->Describe());
}

// The deployment a map line names; empty if it is not a map line.
std::string DeploymentOf(const std::string& line) {
  if (!absl::StartsWith(line, kMapHead)) return "";
  absl::string_view rest = absl::string_view(line).substr(kMapHead.size());
  return std::string(rest.substr(0, rest.find(' ')));
}

absl::Status Remapped(const std::string& name, const std::string& found,
                      const std::string& want) {
  return absl::FailedPreconditionError(absl::StrCat(
      name, " holds the shard map `", found,
      "`, but this configuration makes it `", want,
      "`: the etcd cluster list changed (a cluster added, removed, reordered "
      "or taken from another deployment), which would move accounts to "
      "clusters that do not hold them. Start with the previous list, or "
      "re-shard offline (docs/storage.md, \"Several clusters\"); nothing was "
      "written"));
}

absl::Status CheckDistinct(const Shards& shards) {
  for (size_t i = 0; i < shards.size(); ++i) {
    for (size_t j = i + 1; j < shards.size(); ++j) {
      if (shards[i]->cluster_id() == shards[j]->cluster_id()) {
        return absl::FailedPreconditionError(absl::StrCat(
            Name(shards, i), " and ", Name(shards, j),
            " are the same etcd cluster (id ",
            absl::Hex(shards[i]->cluster_id()), "): list each cluster once"));
      }
    }
  }
  return absl::OkStatus();
}

// Reads every cluster's map and checks it against the configuration,
// writing nothing. Returns the deployment id ("" when no cluster has a map).
absl::StatusOr<std::string> Survey(
    const Shards& shards, std::vector<std::optional<std::string>>& maps) {
  std::string deployment;
  for (size_t i = 0; i < shards.size(); ++i) {
    BKV_ASSIGN_OR_RETURN(maps[i], shards[i]->ReadShardMap());
    if (maps[i].has_value()) {
      if (deployment.empty()) deployment = DeploymentOf(*maps[i]);
      const std::string want = ShardMapLine(deployment, shards.size(), i);
      if (*maps[i] != want) return Remapped(Name(shards, i), *maps[i], want);
      continue;
    }
    BKV_ASSIGN_OR_RETURN(const bool holds, shards[i]->HoldsAccounts());
    if (holds && shards.size() > 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          Name(shards, i),
          " holds accounts but no shard map: it served a single-cluster "
          "deployment (etcd_endpoints) from before shard maps, and listing it "
          "among several clusters would move most of its accounts. Start "
          "with it alone, or re-shard offline (docs/storage.md, \"Several "
          "clusters\"); nothing was written"));
    }
  }
  return deployment;
}

// Writes the maps the survey found missing. Nodes starting together agree
// through cluster 0's map: whoever created it chose the deployment id.
absl::Status CompleteMaps(Shards& shards,
                          const std::vector<std::optional<std::string>>& maps,
                          std::string deployment) {
  if (deployment.empty()) {
    std::vector<uint8_t> id(16);
    SystemRandom().Bytes(id);
    deployment = HexEncode(id);
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    if (maps[i].has_value()) continue;
    std::string want = ShardMapLine(deployment, shards.size(), i);
    BKV_ASSIGN_OR_RETURN(const std::string got,
                         shards[i]->CreateShardMap(want));
    if (got != want && i == 0) {
      deployment = DeploymentOf(got);
      want = ShardMapLine(deployment, shards.size(), i);
    }
    if (got != want) return Remapped(Name(shards, i), got, want);
  }
  return absl::OkStatus();
}

}  // namespace

std::string ShardMapLine(const std::string& deployment, size_t clusters,
                         size_t index) {
  return absl::StrCat(kMapHead, deployment, " clusters=", clusters,
                      " index=", index);
}

absl::StatusOr<std::unique_ptr<RecordStore>> OpenEtcdShards(
    const std::vector<EtcdRecordStoreOptions>& clusters,
    std::shared_ptr<const Sealer> sealer) {
  if (clusters.empty()) {
    return absl::InvalidArgumentError("no etcd cluster configured");
  }
  Shards shards;
  for (size_t i = 0; i < clusters.size(); ++i) {
    auto store = EtcdRecordStore::Open(clusters[i], sealer);
    if (!store.ok()) {
      return absl::Status(
          store.status().code(),
          absl::StrCat("etcd cluster ", i, " of ", clusters.size(), ": ",
                       store.status().message()));
    }
    shards.push_back(*std::move(store));
  }
  BKV_RETURN_IF_ERROR(CheckDistinct(shards));
  std::vector<std::optional<std::string>> maps(shards.size());
  BKV_ASSIGN_OR_RETURN(std::string deployment, Survey(shards, maps));
  BKV_RETURN_IF_ERROR(CompleteMaps(shards, maps, std::move(deployment)));
  if (shards.size() == 1) {
    return std::unique_ptr<RecordStore>(std::move(shards[0]));
  }
  std::vector<std::unique_ptr<RecordStore>> stores;
  for (auto& s : shards) stores.push_back(std::move(s));
  BKV_ASSIGN_OR_RETURN(auto sharded,
                       ShardedRecordStore::Create(std::move(stores)));
  return std::unique_ptr<RecordStore>(std::move(sharded));
}

}  // namespace bkv::storage
