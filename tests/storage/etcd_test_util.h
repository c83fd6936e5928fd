#ifndef BKV_TESTS_STORAGE_ETCD_TEST_UTIL_H_
#define BKV_TESTS_STORAGE_ETCD_TEST_UTIL_H_

// Shared by the etcd store tests: opening a store on a test cluster, and a
// raw etcd client for reading and tampering behind the store's back.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "storage/etcd_record_store.h"
#include "tests/storage/etcd_cluster.h"

namespace bkv::storage::testing {

// A key prefix no other test in this process uses.
inline std::string UniquePrefix() {
  static std::atomic<int> n{0};
  return absl::StrCat("t", n++, "/");
}

inline EtcdRecordStoreOptions PlainOptions(const EtcdCluster& c,
                                           std::string prefix) {
  EtcdRecordStoreOptions o;
  o.endpoints = c.Endpoints();
  o.key_prefix = std::move(prefix);
  o.insecure = true;
  o.call_timeout = absl::Seconds(1);
  o.op_timeout = absl::Seconds(5);
  o.min_compaction_interval = absl::ZeroDuration();
  return o;
}

// Plain KV access to member `i` (linearizable reads).
class RawEtcd {
 public:
  RawEtcd(const EtcdCluster& c, int i)
      : kv_(etcdserverpb::KV::NewStub(grpc::CreateChannel(
            c.Endpoints()[i], grpc::InsecureChannelCredentials()))) {}

  grpc::Status Range(const std::string& key, int64_t revision,
                     etcdserverpb::RangeResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    etcdserverpb::RangeRequest req;
    req.set_key(key);
    req.set_revision(revision);
    return kv_->Range(&ctx, req, resp);
  }
  // The create revision of `key` now; 0 if it is absent.
  int64_t CreateRevision(const std::string& key) {
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(Range(key, 0, &resp).ok());
    return resp.kvs_size() == 1 ? resp.kvs(0).create_revision() : 0;
  }
  grpc::Status Put(const std::string& key, const std::string& value) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    etcdserverpb::PutResponse resp;
    return kv_->Put(&ctx, req, &resp);
  }
  grpc::Status Delete(const std::string& key) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(key);
    etcdserverpb::DeleteRangeResponse resp;
    return kv_->DeleteRange(&ctx, req, &resp);
  }

 private:
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
};

}  // namespace bkv::storage::testing

#endif  // BKV_TESTS_STORAGE_ETCD_TEST_UTIL_H_
