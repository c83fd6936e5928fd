// `cluster form`'s repair of a damaged anchored object (DestroyBrokenObject)
// over a real SoftHSM token behind the tests/hsm shim module, whose value
// reads fail on demand: a transient device error is no verdict (form3
// review finding 6). ctest -R rollback.quorum.ClusterFormRepair
#include "server/cluster_form.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "hsm/anchored_object.h"
#include "hsm/pkcs11_hsm.h"
#include "tests/hsm/test_token.h"

namespace bkv::server {
namespace {

constexpr char kLabel[] = "bkv-test-formed";
constexpr char kMacLabel[] = "bkv-test-formed-mac";

// Of the next CKA_VALUE reads, `skip` pass and `n` fail (CKR_DEVICE_ERROR).
void FailValueReads(int skip, int n) {
  void* dl = dlopen(BKV_COPY_FAILING_MODULE, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(dl, nullptr);
  auto fail = reinterpret_cast<void (*)(int, int)>(
      dlsym(dl, "bkv_test_fail_value_reads"));
  ASSERT_NE(fail, nullptr);
  fail(skip, n);
  dlclose(dl);
}

bool Parses(std::span<const uint8_t> b) {
  return std::string(b.begin(), b.end()) == "members";
}

void Put(const std::shared_ptr<hsm::Pkcs11Hsm>& token,
         const std::string& value) {
  auto object = hsm::AnchoredObject::Open(token, kLabel, kMacLabel);
  ASSERT_TRUE(object.ok()) << object.status();
  ASSERT_TRUE(
      (*object)->Write(std::vector<uint8_t>(value.begin(), value.end())).ok());
}

std::optional<std::string> Get(const std::shared_ptr<hsm::Pkcs11Hsm>& token) {
  auto object = hsm::AnchoredObject::Open(token, kLabel, kMacLabel);
  EXPECT_TRUE(object.ok()) << object.status();
  if (!object.ok()) return std::nullopt;
  auto stored = (*object)->Read();
  EXPECT_TRUE(stored.ok()) << stored.status();
  if (!stored.ok() || !*stored) return std::nullopt;
  return std::string((*stored)->begin(), (*stored)->end());
}

// Form3 review finding 6's transient path: the object's read fails with a
// device error once Open found it (the first value read passes, the
// second fails). A sound object, and even one that does not parse, is then
// not destroyed: the error says "nothing was destroyed; run the command
// again". Run again without the fault, the sound one is kept and the one
// that does not parse is destroyed. Before the fix the transient error was
// taken as a verdict and the sound object destroyed.
TEST(ClusterFormRepair, TransientReadErrorDestroysNothing) {
  // The create/destroy layout, whose value is CKA_VALUE (the fault's
  // target); the in-place slots' transient read in this repair: untested.
  ASSERT_EQ(setenv("BKV_TEST_REFUSE_SET", "1", 1), 0);
  auto made = hsm::testing::TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(made.ok()) << made.status();
  auto opened = hsm::testing::OpenThroughShim(**made, BKV_COPY_FAILING_MODULE);
  ASSERT_TRUE(opened.ok()) << opened.status();
  const std::shared_ptr<hsm::Pkcs11Hsm> token = *std::move(opened);
  auto repair = [&] {
    return DestroyBrokenObject(token, kLabel, kMacLabel, Parses,
                               "cluster_form_destroying");
  };
  for (const std::string value : {"members", "garbage"}) {
    SCOPED_TRACE(value);
    ASSERT_NO_FATAL_FAILURE(Put(token, value));
    ASSERT_NO_FATAL_FAILURE(FailValueReads(1, 1));
    auto failed = repair();
    FailValueReads(0, 0);
    ASSERT_FALSE(failed.ok());
    EXPECT_TRUE(absl::IsUnavailable(failed.status())) << failed.status();
    EXPECT_NE(failed.status().message().find(
                  "nothing was destroyed; run the command again"),
              std::string::npos)
        << failed.status();
    EXPECT_EQ(Get(token), value) << "destroyed on a transient error";
  }
  // The garbage one is a definite verdict: destroyed when read cleanly.
  auto destroyed = repair();
  ASSERT_TRUE(destroyed.ok()) << destroyed.status();
  EXPECT_TRUE(*destroyed);
  EXPECT_EQ(Get(token), std::nullopt);
  ASSERT_NO_FATAL_FAILURE(Put(token, "members"));
  auto kept = repair();
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_FALSE(*kept);
  EXPECT_EQ(Get(token), "members");
}

}  // namespace
}  // namespace bkv::server
