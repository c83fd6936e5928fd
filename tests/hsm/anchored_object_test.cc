// AnchoredObject on a token that cannot copy objects: the real SoftHSMv2
// module behind a shim whose C_CopyObject fails (copy_failing_module.c).
// Heads are normally staged as session objects and copied to the token;
// here every copy fails and the write must fall back to a direct create.
// ctest -R hsm.anchored
#include "hsm/anchored_object.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/hsm/test_token.h"

namespace bkv::hsm {
namespace {

constexpr char kLabel[] = "bkv-test-anchored";
constexpr char kMacLabel[] = "bkv-test-anchored-mac";

// The copies the shim refused so far.
int RefusedCopies() {
  void* dl = dlopen(BKV_COPY_FAILING_MODULE, RTLD_NOW | RTLD_NOLOAD);
  if (dl == nullptr) return -1;
  auto calls = reinterpret_cast<int (*)()>(dlsym(dl, "bkv_test_copy_calls"));
  const int n = calls != nullptr ? calls() : -1;
  dlclose(dl);
  return n;
}

std::vector<uint8_t> Bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

TEST(AnchoredObjectFallback, RefusedCopyWritesTheHeadDirectlyAndNoStagedCopy) {
  auto token = testing::TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  auto hsm = testing::OpenThroughShim(**token, BKV_COPY_FAILING_MODULE);
  ASSERT_TRUE(hsm.ok()) << hsm.status();

  auto head = AnchoredObject::Open(*hsm, kLabel, kMacLabel);
  ASSERT_TRUE(head.ok()) << head.status();
  for (const char* value : {"generation one", "generation two"}) {
    ASSERT_TRUE((*head)->Write(Bytes(value)).ok());
  }
  EXPECT_EQ(RefusedCopies(), 2) << "each write tried the copy first";
  auto read = (*head)->Read();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(**read, Bytes("generation two"));

  // One head, a private token object; no staged session copy, which any
  // session of this process would still see.
  {
    auto session = (*hsm)->AcquireSession();
    ASSERT_TRUE(session.ok()) << session.status();
    auto objects = session->FindObjects(CKO_DATA, kLabel);
    ASSERT_TRUE(objects.ok()) << objects.status();
    ASSERT_EQ(objects->size(), 1u);
    EXPECT_TRUE(session->GetBoolAttribute((*objects)[0], CKA_TOKEN).value());
    EXPECT_TRUE(session->GetBoolAttribute((*objects)[0], CKA_PRIVATE).value());
    auto staged =
        session->FindObjects(CKO_DATA, std::string(kLabel) + ".staging");
    ASSERT_TRUE(staged.ok()) << staged.status();
    EXPECT_TRUE(staged->empty()) << "a staged session copy stayed";
  }
  head->reset();
  hsm->reset();

  // The head is in the token: SoftHSM itself, opened afresh, reads it.
  auto direct = Pkcs11Hsm::Open((*token)->options(), (*token)->pin());
  ASSERT_TRUE(direct.ok()) << direct.status();
  auto reopened = AnchoredObject::Open(*direct, kLabel, kMacLabel);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto again = (*reopened)->Read();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(**again, Bytes("generation two"));
}

}  // namespace
}  // namespace bkv::hsm
