#ifndef BKV_STORAGE_ETCD_SHARDS_H_
#define BKV_STORAGE_ETCD_SHARDS_H_

// The records on one or several etcd clusters, each account on the cluster
// ShardOf(account key, N) picks (storage/sharded_record_store.h), and the
// guard that keeps that mapping from changing under live records.
//
// Shard map: each cluster keeps, at `<prefix>m`, one line naming the
// deployment and its own place in it:
//
//   bkv-shard-map/v1 hash=jump64 deployment=<32 hex> clusters=<N> index=<i>
//
// written once, when a deployment's first node starts on clusters that hold
// no map (the deployment id is random; cluster 0's map, written first,
// decides it when nodes start together). On every start each cluster's map
// must read exactly what this configuration makes of it. A cluster list
// that was extended, shortened, reordered, or mixed with another
// deployment's cluster would send accounts to a cluster that does not hold
// them (a fresh counter, a second key): it is refused with
// kFailedPrecondition before anything is written. Re-sharding is offline
// (docs/storage.md, "Several clusters").

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/sealer.h"
#include "storage/etcd_record_store.h"
#include "storage/record_store.h"

namespace bkv::storage {

// `clusters[i]` are the options of cluster i (endpoints differ; prefix, TLS
// and deadlines usually not). One cluster: the EtcdRecordStore itself, with
// its map checked the same way (so a later second cluster is refused, not
// silently remapped).
absl::StatusOr<std::unique_ptr<RecordStore>> OpenEtcdShards(
    const std::vector<EtcdRecordStoreOptions>& clusters,
    std::shared_ptr<const Sealer> sealer);

// The map line cluster `index` of `clusters` in `deployment` keeps.
std::string ShardMapLine(const std::string& deployment, size_t clusters,
                         size_t index);

}  // namespace bkv::storage

#endif  // BKV_STORAGE_ETCD_SHARDS_H_
