// CancelToken and the "cancelled by the app" mark (client/cancel.h), and the
// callback store's status mapping (client/callback_blob_store.h).
#include "client/cancel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "client/c_status.h"
#include "client/cancellable_blob_store.h"
#include "tests/client/client_test_support.h"
#include "tests/client/test_stores.h"

namespace bkv {
namespace {

TEST(CancelTest, MarkIsNotTheMessageNorTheCode) {
  EXPECT_TRUE(IsCancelledByApp(CancelledByApp()));
  EXPECT_TRUE(IsCancelledByApp(CancelledByApp("any text")));
  // The pipelines' own kCancelled ("stopped by an earlier error") and a
  // status whose text merely says so are not the app's cancel.
  EXPECT_FALSE(IsCancelledByApp(absl::CancelledError("cancelled by the app")));
  EXPECT_FALSE(IsCancelledByApp(absl::UnavailableError("x")));
  EXPECT_EQ(StatusToC(CancelledByApp()), BKV_CANCELLED);
  EXPECT_EQ(StatusToC(absl::CancelledError("cancelled by the app")),
            BKV_INTERNAL);
  // Round trip through an app callback's status.
  EXPECT_TRUE(IsCancelledByApp(StatusFromC(BKV_CANCELLED, "user")));
  EXPECT_EQ(StatusToC(StatusFromC(BKV_UNAVAILABLE, "x")), BKV_UNAVAILABLE);
  EXPECT_EQ(StatusToC(StatusFromC(BKV_NOT_FOUND, "x")), BKV_NOT_FOUND);
}

TEST(CancelTest, CancelFromAnotherThreadWakesASleeper) {
  CancelToken token;
  int hooked = 0;
  const uint64_t id = token.Add([&] { ++hooked; });
  std::thread other([&] { token.Cancel(); });
  // Without the cancel this sleeps ten minutes and the ctest timeout fails it.
  EXPECT_FALSE(token.SleepFor(std::chrono::minutes(10)));
  other.join();
  token.Remove(id);
  EXPECT_TRUE(token.cancelled());
  EXPECT_EQ(hooked, 1);
  token.Cancel();  // idempotent: hooks ran once
  EXPECT_EQ(hooked, 1);
  int late = 0;
  token.Add([&] { ++late; });  // already cancelled: runs at once
  EXPECT_EQ(late, 1);
}

TEST(CancelTest, CancelledPutLeavesNoObjectInACallbackStore) {
  testing::TempDir dir;
  auto store = testing::OpenTestStore("callback://" + (dir / "cloud"));
  ASSERT_TRUE(store.ok()) << store.status();
  CancelToken token;
  CancellableBlobStore view(**store);
  uint64_t seen = 0;
  view.set_call(&token, [&](uint64_t n) {
    seen = n;
    token.Cancel();  // after the first block
  });
  const auto bytes = testing::RandomBytes(4 << 20, 5);
  // A source handing out 64 KiB at a time, like the pipelines.
  class Chunks final : public ByteSource {
   public:
    explicit Chunks(std::span<const uint8_t> d) : d_(d) {}
    absl::StatusOr<size_t> Read(std::span<uint8_t> out) override {
      const size_t n = std::min({out.size(), d_.size(), size_t{65536}});
      std::copy_n(d_.begin(), n, out.begin());
      d_ = d_.subspan(n);
      return n;
    }

   private:
    std::span<const uint8_t> d_;
  } source(bytes);
  absl::Status s = view.Put("obj", source);
  EXPECT_TRUE(IsCancelledByApp(s)) << s;
  EXPECT_GT(seen, 0u);
  EXPECT_TRUE(absl::IsNotFound((*store)->Stat("obj").status()));
  auto list = (*store)->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  // The app's put removed its temporary too.
  EXPECT_TRUE(std::filesystem::is_empty(dir / "cloud"));
}

}  // namespace
}  // namespace bkv
