// Misconfiguration against real etcd processes: every case fails at Open
// with an error naming the cause, and nothing is written.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "storage/etcd_record_store.h"
#include "tests/storage/etcd_test_util.h"

namespace bkv::storage {
namespace {

using ::bkv::storage::testing::EtcdCluster;
using ::bkv::storage::testing::MakeTlsFiles;
using ::bkv::storage::testing::PlainOptions;
using ::bkv::storage::testing::SampleRecord;
using ::bkv::storage::testing::TempDir;
using ::bkv::storage::testing::TestSealer;
using ::bkv::storage::testing::TlsFiles;
using ::testing::HasSubstr;

TEST(EtcdConfigTest, UnreachableEndpointsNameEachCause) {
  // A member that was killed: nothing listens on its port any more.
  auto c = EtcdCluster::Start({.members = 1});
  ASSERT_TRUE(c.ok()) << c.status();
  EtcdRecordStoreOptions o = PlainOptions(**c, "p/");
  (*c)->Kill(0);
  auto store = EtcdRecordStore::Open(o, TestSealer());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(o.endpoints[0]));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("no etcd endpoint answered"));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("nothing listens there"));
}

TEST(EtcdConfigTest, EndpointsOfTwoClustersAreRefused) {
  auto a = EtcdCluster::Start({.members = 1});
  auto b = EtcdCluster::Start({.members = 1});
  ASSERT_TRUE(a.ok() && b.ok());
  EtcdRecordStoreOptions o = PlainOptions(**a, "p/");
  o.endpoints.push_back((*b)->Endpoints()[0]);
  auto store = EtcdRecordStore::Open(o, TestSealer());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("different clusters"));
}

TEST(EtcdConfigTest, PlaintextNeedsExplicitInsecure) {
  EtcdRecordStoreOptions o;
  o.endpoints = {"127.0.0.1:1"};
  auto store = EtcdRecordStore::Open(o, TestSealer());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("ca_file"));
  o.ca_file = "/nonexistent/ca.crt";
  store = EtcdRecordStore::Open(o, TestSealer());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("/nonexistent/ca.crt"));
}

class EtcdTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto files = MakeTlsFiles(dir_.path());
    ASSERT_TRUE(files.ok()) << files.status();
    tls_ = *files;
    auto c = EtcdCluster::Start({.members = 1, .tls = &tls_});
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
  }
  EtcdRecordStoreOptions Options() {
    EtcdRecordStoreOptions o = PlainOptions(*cluster_, "tls/");
    o.insecure = false;
    o.ca_file = tls_.ca_crt;
    o.cert_file = tls_.client_crt;
    o.key_file = tls_.client_key;
    return o;
  }
  TempDir dir_;
  TlsFiles tls_;
  std::unique_ptr<EtcdCluster> cluster_;
};

TEST_F(EtcdTlsTest, RightMaterialWorks) {
  auto store = EtcdRecordStore::Open(Options(), TestSealer());
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CompareAndSwap("tls-user", 0, SampleRecord()).ok());
  EXPECT_EQ((*store)->Get("tls-user")->version(), 1u);
}

TEST_F(EtcdTlsTest, UntrustedServerCertificateIsNamed) {
  EtcdRecordStoreOptions o = Options();
  o.ca_file = tls_.other_ca_crt;
  auto store = EtcdRecordStore::Open(o, TestSealer());
  ASSERT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("TLS handshake failed"));
}

TEST_F(EtcdTlsTest, ClientCertificateFromAnotherCaIsRefused) {
  EtcdRecordStoreOptions o = Options();
  o.cert_file = tls_.other_client_crt;
  o.key_file = tls_.other_client_key;
  auto store = EtcdRecordStore::Open(o, TestSealer());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable)
      << store.status();
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(o.endpoints[0]));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("does not accept this client's certificate"));
}

TEST_F(EtcdTlsTest, MissingClientCertificateIsRefused) {
  EtcdRecordStoreOptions o = Options();
  o.cert_file.clear();
  o.key_file.clear();
  auto store = EtcdRecordStore::Open(o, TestSealer());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(o.endpoints[0]));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("does not accept this client's certificate"));
}

TEST_F(EtcdTlsTest, PlaintextToATlsMemberIsRefused) {
  EtcdRecordStoreOptions o = PlainOptions(*cluster_, "tls/");
  auto store = EtcdRecordStore::Open(o, TestSealer());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable)
      << store.status();
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr("does it serve TLS?"));
}

}  // namespace
}  // namespace bkv::storage
