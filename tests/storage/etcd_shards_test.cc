// Accounts sharded over two real single-member etcd clusters: the contract
// holds through the sharded store, every account lives on the cluster
// ShardOf picks, and a cluster list that would remap accounts is refused
// at open, writing nothing.
#include "storage/etcd_shards.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/sharded_record_store.h"
#include "tests/storage/etcd_test_util.h"
#include "tests/storage/record_store_contract.h"

namespace bkv::storage {
namespace {

using ::bkv::storage::testing::EtcdCluster;
using ::bkv::storage::testing::PlainOptions;
using ::bkv::storage::testing::RawEtcd;
using ::bkv::storage::testing::SampleRecord;
using ::bkv::storage::testing::TestSealer;
using ::bkv::storage::testing::UniquePrefix;
using ::testing::HasSubstr;

class EtcdShardsTest : public ::testing::Test {
 protected:
  // Three single-member clusters for the suite; each test its own prefix.
  static void SetUpTestSuite() {
    for (auto*& c : clusters_) {
      auto started = EtcdCluster::Start({.members = 1});
      ASSERT_TRUE(started.ok()) << started.status();
      c = started->release();
    }
  }
  static void TearDownTestSuite() {
    for (auto*& c : clusters_) {
      delete c;
      c = nullptr;
    }
  }
  void SetUp() override {
    for (auto* c : clusters_) ASSERT_NE(c, nullptr);
    prefix_ = UniquePrefix();
  }
  // The options of the clusters at `order` (indices into clusters_).
  std::vector<EtcdRecordStoreOptions> Clusters(std::vector<int> order) {
    std::vector<EtcdRecordStoreOptions> out;
    for (int i : order) out.push_back(PlainOptions(*clusters_[i], prefix_));
    return out;
  }
  absl::StatusOr<std::unique_ptr<RecordStore>> Open(std::vector<int> order) {
    return OpenEtcdShards(Clusters(std::move(order)), TestSealer());
  }
  std::unique_ptr<RecordStore> OpenOrDie(std::vector<int> order) {
    auto s = Open(std::move(order));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  // Keys under this test's prefix on cluster i, and the shard map there.
  int64_t KeysOn(int i) {
    etcdserverpb::RangeResponse resp;
    grpc::ClientContext ctx;
    etcdserverpb::RangeRequest req;
    req.set_key(prefix_);
    req.set_range_end(prefix_.substr(0, prefix_.size() - 1) + "0");
    req.set_count_only(true);
    auto stub = etcdserverpb::KV::NewStub(grpc::CreateChannel(
        clusters_[i]->Endpoints()[0], grpc::InsecureChannelCredentials()));
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    EXPECT_TRUE(stub->Range(&ctx, req, &resp).ok());
    return resp.count();
  }
  std::string MapOn(int i) {
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(RawEtcd(*clusters_[i], 0).Range(prefix_ + "m", 0, &resp).ok());
    return resp.kvs_size() ? resp.kvs(0).value() : "";
  }
  bool RecordOn(int i, const std::string& id) {
    etcdserverpb::RangeResponse resp;
    EXPECT_TRUE(
        RawEtcd(*clusters_[i], 0)
            .Range(prefix_ + RecordDbKey(DeriveAccountKey(id)), 0, &resp)
            .ok());
    return resp.kvs_size() == 1;
  }

  static EtcdCluster* clusters_[3];
  std::string prefix_;
};
EtcdCluster* EtcdShardsTest::clusters_[3] = {};

std::string Id(int i) { return absl::StrCat("sharded-", i); }

TEST_F(EtcdShardsTest, ContractHoldsAcrossTwoClusters) {
  auto store = OpenOrDie({0, 1});
  auto other = OpenOrDie({0, 1});  // another vault node
  ASSERT_TRUE(store && other);
  for (int i = 0; i < 4; ++i) {
    testing::CheckCreateReadUpdate(*store, *other, Id(100 + i));
    testing::CheckDeleteKeepsVersionsMonotonic(*store, Id(200 + i));
  }
  testing::CheckExactlyOneConcurrentCasWins(*store, *other, Id(300));
  testing::CheckConcurrentIncrementsAreNeverLost(
      *store, {Id(400), Id(401), Id(402), Id(403)});
}

TEST_F(EtcdShardsTest, AccountsSpreadOverBothClustersAsShardOfSays) {
  auto store = OpenOrDie({0, 1});
  ASSERT_NE(store, nullptr);
  constexpr int kAccounts = 40;
  int on[2] = {0, 0};
  for (int i = 0; i < kAccounts; ++i) {
    ASSERT_TRUE(store->CompareAndSwap(Id(i), 0, SampleRecord(i % 3)).ok());
    const size_t want = ShardOf(DeriveAccountKey(Id(i)), 2);
    EXPECT_TRUE(RecordOn(static_cast<int>(want), Id(i))) << Id(i);
    EXPECT_FALSE(RecordOn(static_cast<int>(1 - want), Id(i))) << Id(i);
    ++on[want];
  }
  EXPECT_GT(on[0], 0);
  EXPECT_GT(on[1], 0);
  EXPECT_EQ(*store->Count(), static_cast<uint64_t>(kAccounts));
  int visited = 0;
  ASSERT_TRUE(store
                  ->ForEach([&](const AccountKey&,
                                const absl::StatusOr<v1::UserRecord>& r) {
                    EXPECT_TRUE(r.ok()) << r.status();
                    return ++visited > 0;
                  })
                  .ok());
  EXPECT_EQ(visited, kAccounts);
  // Both clusters carry the same deployment's map, each its own index.
  EXPECT_THAT(MapOn(0), HasSubstr("clusters=2 index=0"));
  EXPECT_THAT(MapOn(1), HasSubstr("clusters=2 index=1"));
  EXPECT_EQ(MapOn(0).substr(0, MapOn(0).find(" clusters=")),
            MapOn(1).substr(0, MapOn(1).find(" clusters=")));
}

TEST_F(EtcdShardsTest, RemappingClusterListsAreRefusedWritingNothing) {
  {
    auto store = OpenOrDie({0, 1});
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->CompareAndSwap(Id(0), 0, SampleRecord()).ok());
  }
  const std::string map0 = MapOn(0), map1 = MapOn(1);
  const int64_t keys0 = KeysOn(0), keys1 = KeysOn(1);
  // Reordered, a cluster added, one removed, one listed twice.
  for (const std::vector<int>& order :
       {std::vector<int>{1, 0}, {0, 1, 2}, {0}, {1}, {0, 0}}) {
    auto store = Open(order);
    ASSERT_FALSE(store.ok()) << "list of " << order.size() << " accepted";
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(store.status().message()),
                ::testing::AnyOf(HasSubstr("cluster list changed"),
                                 HasSubstr("same etcd cluster")));
  }
  EXPECT_EQ(MapOn(0), map0);
  EXPECT_EQ(MapOn(1), map1);
  EXPECT_EQ(KeysOn(0), keys0);
  EXPECT_EQ(KeysOn(1), keys1);
  EXPECT_EQ(KeysOn(2), 0) << "the refused new cluster was written";
  // The original list still opens and serves.
  auto store = OpenOrDie({0, 1});
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Get(Id(0)).ok());
}

TEST_F(EtcdShardsTest, SingleClusterRecordsWithoutMapAreNotSpreadSilently) {
  // A deployment from before shard maps: records on one cluster, no map.
  auto legacy = EtcdRecordStore::Open(Clusters({0})[0], TestSealer());
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  ASSERT_TRUE((*legacy)->CompareAndSwap(Id(0), 0, SampleRecord()).ok());
  auto spread = Open({0, 1});
  ASSERT_EQ(spread.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(spread.status().message()),
              HasSubstr("holds accounts but no shard map"));
  EXPECT_EQ(MapOn(0), "");
  EXPECT_EQ(KeysOn(1), 0);
  // Alone it opens, and from then on carries a one-cluster map.
  auto alone = OpenOrDie({0});
  ASSERT_NE(alone, nullptr);
  EXPECT_TRUE(alone->Get(Id(0)).ok());
  EXPECT_THAT(MapOn(0), HasSubstr("clusters=1 index=0"));
  EXPECT_FALSE(Open({0, 1}).ok());
}

TEST_F(EtcdShardsTest, NodesStartingTogetherAgreeOnOneDeployment) {
  constexpr int kNodes = 6;
  std::vector<std::thread> threads;
  std::atomic<int> opened{0};
  for (int n = 0; n < kNodes; ++n) {
    threads.emplace_back([&] {
      if (Open({0, 1, 2}).ok()) ++opened;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(opened.load(), kNodes);
  const std::string id = MapOn(0).substr(0, MapOn(0).find(" clusters="));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(MapOn(i), absl::StrCat(id, " clusters=3 index=", i));
  }
}

}  // namespace
}  // namespace bkv::storage
