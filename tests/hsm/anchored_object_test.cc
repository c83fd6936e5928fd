// AnchoredObject over a real SoftHSMv2 token: the two slots written in
// place (docs/rollback.md "Slots"), a crash inside one slot's write, the
// MAC, a second writer, old create/destroy tokens; and on a token that
// refuses in-place writes and copies (the real module behind
// copy_failing_module.c), the fallback to a direct create.
// ctest -R hsm.anchored
#include "hsm/anchored_object.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "hsm/pin.h"
#include "hsm/softhsm_dev.h"
#include "tests/hsm/test_token.h"

namespace bkv::hsm {
namespace {

constexpr char kLabel[] = "bkv-test-anchored";
constexpr char kMacLabel[] = "bkv-test-anchored-mac";

// The calls the shim refused so far: "bkv_test_copy_calls" or
// "bkv_test_set_calls".
int Refused(const char* counter) {
  void* dl = dlopen(BKV_COPY_FAILING_MODULE, RTLD_NOW | RTLD_NOLOAD);
  if (dl == nullptr) return -1;
  auto calls = reinterpret_cast<int (*)()>(dlsym(dl, counter));
  const int n = calls != nullptr ? calls() : -1;
  dlclose(dl);
  return n;
}

// Arms one of the shim's faults: "bkv_test_vanish_next_set" or
// "bkv_test_fail_next_destroy".
void Arm(const char* fault) {
  void* dl = dlopen(BKV_COPY_FAILING_MODULE, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(dl, nullptr);
  auto arm = reinterpret_cast<void (*)()>(dlsym(dl, fault));
  ASSERT_NE(arm, nullptr) << fault;
  arm();
  dlclose(dl);
}

// `token` (closed here) opened through the shim over the real SoftHSM;
// `refuse_set`: the shim refuses every C_SetAttributeValue.
std::shared_ptr<Pkcs11Hsm> Shimmed(testing::TestToken& token, bool refuse_set) {
  // Set or cleared: an earlier test of this process may have set it.
  if (refuse_set) {
    setenv("BKV_TEST_REFUSE_SET", "1", 1);
  } else {
    unsetenv("BKV_TEST_REFUSE_SET");
  }
  auto hsm = testing::OpenThroughShim(token, BKV_COPY_FAILING_MODULE);
  EXPECT_TRUE(hsm.ok()) << hsm.status();
  return hsm.ok() ? *std::move(hsm) : nullptr;
}

std::vector<uint8_t> Bytes(const std::string& s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

// The probe: a token that refuses C_SetAttributeValue keeps the
// create/destroy path (probed once per process, no slot left behind); one
// that refuses copies too gets a direct create.
TEST(AnchoredObjectFallback, RefusedCopyWritesTheHeadDirectlyAndNoStagedCopy) {
  auto token = testing::TestToken::Create(/*with_keys=*/false);
  ASSERT_TRUE(token.ok()) << token.status();
  ASSERT_EQ(setenv("BKV_TEST_REFUSE_SET", "1", 1), 0);
  auto hsm = testing::OpenThroughShim(**token, BKV_COPY_FAILING_MODULE);
  ASSERT_TRUE(hsm.ok()) << hsm.status();

  auto head = AnchoredObject::Open(*hsm, kLabel, kMacLabel);
  ASSERT_TRUE(head.ok()) << head.status();
  for (const char* value : {"generation one", "generation two"}) {
    ASSERT_TRUE((*head)->Write(Bytes(value)).ok());
  }
  EXPECT_EQ(Refused("bkv_test_copy_calls"), 2)
      << "each write tried the copy first";
  EXPECT_EQ(Refused("bkv_test_set_calls"), 1) << "one probe per process";
  EXPECT_EQ((*head)->path(), AnchoredObject::Path::kCreateDestroy);
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
    for (int i : {0, 1}) {
      auto slot = session->FindObjectsWith(CKO_DATA, CKA_APPLICATION,
                                           AnchoredObject::SlotName(kLabel, i));
      ASSERT_TRUE(slot.ok()) << slot.status();
      EXPECT_TRUE(slot->empty()) << "the probe's slot stayed";
    }
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

// Raw PKCS#11 access to an anchored value's objects, as a crash, a second
// writer or an edited token would leave them.
class Raw {
 public:
  explicit Raw(Pkcs11Hsm& hsm) : session_(*hsm.AcquireSession()) {}
  std::vector<CK_OBJECT_HANDLE> Objects(const std::string& label) {
    return *session_.FindObjects(CKO_DATA, label);
  }
  std::vector<CK_OBJECT_HANDLE> Slots(int i) {
    return *session_.FindObjectsWith(CKO_DATA, CKA_APPLICATION,
                                     AnchoredObject::SlotName(kLabel, i));
  }
  CK_OBJECT_HANDLE Slot(int i) {
    auto found = Slots(i);
    EXPECT_EQ(found.size(), 1u) << "slot " << i;
    return found.empty() ? CK_INVALID_HANDLE : found[0];
  }
  std::vector<uint8_t> Get(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type) {
    return *session_.GetAttribute(o, type);
  }
  void Set(CK_OBJECT_HANDLE o, std::span<const uint8_t> stored) {
    ASSERT_TRUE(session_.SetAttribute(o, CKA_LABEL, stored).ok());
  }
  // The generation stored in slot i.
  uint64_t Gen(int i) {
    const std::vector<uint8_t> stored = Get(Slot(i), CKA_LABEL);
    uint64_t gen = 0;
    for (size_t b = 0; b < 8 && b < stored.size(); ++b) {
      gen = (gen << 8) | stored[b];
    }
    return gen;
  }
  void PutOld(std::span<const uint8_t> stored) {  // a create/destroy object
    CK_OBJECT_CLASS data = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    std::string label = kLabel;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &data, sizeof(data)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, label.data(), label.size()},
        {CKA_VALUE, const_cast<uint8_t*>(stored.data()), stored.size()},
    };
    ASSERT_TRUE(session_.CreateObject(tmpl).ok());
  }

 private:
  Pkcs11Hsm::Session session_;
};

class AnchoredObjectSlots : public ::testing::Test {
 protected:
  void SetUp() override {
    auto token = testing::TestToken::Create(/*with_keys=*/false);
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *std::move(token);
  }
  std::unique_ptr<AnchoredObject> Open(
      AnchoredObject::Path path = AnchoredObject::Path::kUnknown) {
    auto o = AnchoredObject::Open(token_->hsm(), kLabel, kMacLabel, path);
    EXPECT_TRUE(o.ok()) << o.status();
    return o.ok() ? *std::move(o) : nullptr;
  }
  // What a process opening the token afresh reads.
  std::string ReadAfresh() {
    auto o = AnchoredObject::Open(token_->hsm(), kLabel, kMacLabel);
    if (!o.ok()) return std::string(o.status().message());
    auto value = (*o)->Read();
    if (!value.ok()) return std::string(value.status().message());
    if (!*value) return "(none)";
    return std::string((*value)->begin(), (*value)->end());
  }
  static void WriteAll(AnchoredObject& o,
                       std::initializer_list<const char*> values) {
    for (const char* v : values) ASSERT_TRUE(o.Write(Bytes(v)).ok()) << v;
  }

  std::unique_ptr<testing::TestToken> token_;
};

// Generation g in slot g mod 2, rewritten in place: the same two token
// objects for every write, no object under the plain label.
TEST_F(AnchoredObjectSlots, WritesAlternateBetweenTwoSlotsInPlace) {
  auto head = Open();
  EXPECT_EQ(head->path(), AnchoredObject::Path::kUnknown);
  std::string reason;
  head->SetPathListener([&](AnchoredObject::Path, absl::string_view why) {
    reason = std::string(why);
  });
  WriteAll(*head, {"one", "two"});
  EXPECT_EQ(head->path(), AnchoredObject::Path::kInPlace) << reason;
  Raw raw(*token_->hsm());
  const CK_OBJECT_HANDLE slot0 = raw.Slot(0), slot1 = raw.Slot(1);
  WriteAll(*head, {"three", "four", "five"});
  EXPECT_EQ(raw.Slot(0), slot0) << "slot 0 was recreated, not rewritten";
  EXPECT_EQ(raw.Slot(1), slot1) << "slot 1 was recreated, not rewritten";
  EXPECT_EQ(raw.Gen(0), 4u);
  EXPECT_EQ(raw.Gen(1), 5u);
  EXPECT_TRUE(raw.Objects(kLabel).empty());
  EXPECT_EQ(raw.Get(slot0, CKA_TOKEN), std::vector<uint8_t>{CK_TRUE});
  EXPECT_EQ(raw.Get(slot0, CKA_PRIVATE), std::vector<uint8_t>{CK_TRUE});
  EXPECT_EQ(ReadAfresh(), "five");
  EXPECT_EQ(Open()->path(), AnchoredObject::Path::kInPlace);
}

// A crash inside a write (SoftHSM's store() truncates, then writes) breaks
// only the slot being written: the other slot's generation is read, and the
// next write of that parity repairs the broken one.
TEST_F(AnchoredObjectSlots, BrokenSlotFallsBackToTheOtherGeneration) {
  auto head = Open();
  WriteAll(*head, {"one", "two", "three"});  // 2 in slot 0, 3 in slot 1
  head.reset();
  Raw raw(*token_->hsm());
  const std::vector<uint8_t> three = raw.Get(raw.Slot(1), CKA_LABEL);
  raw.Set(raw.Slot(1), std::span(three).first(10));  // truncated mid-write
  EXPECT_EQ(ReadAfresh(), "two");
  head = Open();
  WriteAll(*head, {"three again"});  // generation 3 again, in slot 1
  EXPECT_EQ(raw.Gen(1), 3u);
  EXPECT_EQ(ReadAfresh(), "three again");

  // A changed byte of slot 0's value: its MAC fails, slot 1 is read.
  std::vector<uint8_t> two = raw.Get(raw.Slot(0), CKA_LABEL);
  two[9] ^= 1;
  raw.Set(raw.Slot(0), two);
  EXPECT_EQ(ReadAfresh(), "three again");
}

TEST_F(AnchoredObjectSlots, BothSlotsBrokenIsDataLoss) {
  auto head = Open();
  WriteAll(*head, {"one", "two"});
  head.reset();
  Raw raw(*token_->hsm());
  std::vector<uint8_t> one = raw.Get(raw.Slot(1), CKA_LABEL);
  // Slot 1's generation copied into slot 0: a valid MAC in the wrong slot.
  raw.Set(raw.Slot(0), one);
  one.back() ^= 1;
  raw.Set(raw.Slot(1), one);
  auto opened = AnchoredObject::Open(token_->hsm(), kLabel, kMacLabel);
  ASSERT_FALSE(opened.ok());
  EXPECT_TRUE(absl::IsDataLoss(opened.status())) << opened.status();
  EXPECT_NE(opened.status().message().find("both slots"), std::string::npos);
}

// Two writers (two processes on one token, a re-anchor beside a serving
// vault): whoever finds a slot not as it left it is refused, before it
// writes, so neither undoes the other's generation.
TEST_F(AnchoredObjectSlots, SecondWriterIsFencedNotUndone) {
  auto a = Open();
  WriteAll(*a, {"one"});
  auto b = Open();
  WriteAll(*b, {"b two"});
  absl::Status fenced = a->Write(Bytes("a two"));
  EXPECT_TRUE(absl::IsFailedPrecondition(fenced)) << fenced;
  EXPECT_NE(fenced.message().find("another writer"), std::string::npos);
  EXPECT_EQ(ReadAfresh(), "b two");
  WriteAll(*b, {"b three"});

  // Both read generation 3; the first to write 4 wins, the second is
  // refused (slot 0 no longer holds generation 2).
  auto c = Open();
  auto d = Open();
  WriteAll(*c, {"c four"});
  fenced = d->Write(Bytes("d four"));
  EXPECT_TRUE(absl::IsFailedPrecondition(fenced)) << fenced;
  EXPECT_EQ(ReadAfresh(), "c four");
  fenced = b->Write(Bytes("b four"));
  EXPECT_TRUE(absl::IsFailedPrecondition(fenced)) << fenced;
  EXPECT_EQ(ReadAfresh(), "c four");
}

// A token written by create/destroy generations (every token before
// branch slots) reads as before; its first write moves it to the slots and
// removes the old object; an old object a crash left beside newer slots
// goes at the next open.
TEST_F(AnchoredObjectSlots, OldTokenIsReadAndMigratedOnTheFirstWrite) {
  auto old = Open(AnchoredObject::Path::kCreateDestroy);
  WriteAll(*old, {"one", "two"});
  old.reset();
  Raw raw(*token_->hsm());
  ASSERT_EQ(raw.Objects(kLabel).size(), 1u);
  const std::vector<uint8_t> two = raw.Get(raw.Objects(kLabel)[0], CKA_VALUE);
  for (int i : {0, 1}) {
    EXPECT_TRUE(raw.Slots(i).empty());
  }
  EXPECT_EQ(ReadAfresh(), "two");

  auto head = Open();
  EXPECT_EQ(head->path(), AnchoredObject::Path::kUnknown);
  WriteAll(*head, {"three"});
  EXPECT_EQ(head->path(), AnchoredObject::Path::kInPlace);
  EXPECT_TRUE(raw.Objects(kLabel).empty()) << "the old object stayed";
  EXPECT_EQ(raw.Gen(1), 3u);
  EXPECT_EQ(ReadAfresh(), "three");
  WriteAll(*head, {"four"});
  EXPECT_EQ(ReadAfresh(), "four");

  raw.PutOld(two);  // as a crash between the slot's write and the destroy
  EXPECT_EQ(ReadAfresh(), "four");
  EXPECT_TRUE(raw.Objects(kLabel).empty());
}

// Our own faults, through the shim over a real SoftHSM token.
class AnchoredObjectOwnFaults : public ::testing::Test {
 protected:
  void Shim(bool refuse_set) {
    auto token = testing::TestToken::Create(/*with_keys=*/false);
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *std::move(token);
    hsm_ = Shimmed(*token_, refuse_set);
    ASSERT_NE(hsm_, nullptr);
  }
  std::unique_ptr<testing::TestToken> token_;
  std::shared_ptr<Pkcs11Hsm> hsm_;
};

// Review of `slots` finding 3: our own failed write (SoftHSM's failed
// store() leaves the object invalid: gone for this process) is retried,
// never read as another writer, in either slot.
TEST_F(AnchoredObjectOwnFaults, FailedSetIsRetriedNotFenced) {
  ASSERT_NO_FATAL_FAILURE(Shim(/*refuse_set=*/false));
  auto head = AnchoredObject::Open(hsm_, kLabel, kMacLabel);
  ASSERT_TRUE(head.ok()) << head.status();
  for (const char* v : {"one", "two", "three"}) {
    ASSERT_TRUE((*head)->Write(Bytes(v)).ok()) << v;
  }
  ASSERT_EQ((*head)->path(), AnchoredObject::Path::kInPlace);
  // Generation 4 fails in slot 0, then 5 in slot 1: each retry makes its
  // slot again.
  for (const std::string v : {"four", "five"}) {
    Arm("bkv_test_vanish_next_set");
    absl::Status failed = (*head)->Write(Bytes(v + ", failed"));
    ASSERT_FALSE(failed.ok());
    EXPECT_FALSE(absl::IsFailedPrecondition(failed)) << failed;
    absl::Status retried = (*head)->Write(Bytes(v));
    ASSERT_TRUE(retried.ok()) << retried;
  }
  auto again = AnchoredObject::Open(hsm_, kLabel, kMacLabel);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*(*again)->Read().value(), Bytes("five"));
}

// Review of `slots` finding 5: the probe writes no generation. A token that
// refuses the in-place write and fails the probe's destroy keeps working
// (before: the probe's slot stayed, the next process took the token for an
// in-place one and every write was refused); the leftover goes at Open.
TEST_F(AnchoredObjectOwnFaults, LeftoverProbeNeverWedgesTheNextProcess) {
  ASSERT_NO_FATAL_FAILURE(Shim(/*refuse_set=*/true));
  auto first = AnchoredObject::Open(hsm_, kLabel, kMacLabel);
  ASSERT_TRUE(first.ok()) << first.status();
  Arm("bkv_test_fail_next_destroy");
  ASSERT_TRUE((*first)->Write(Bytes("one")).ok());
  EXPECT_EQ((*first)->path(), AnchoredObject::Path::kCreateDestroy);
  first->reset();

  auto next = AnchoredObject::Open(hsm_, kLabel, kMacLabel);
  ASSERT_TRUE(next.ok()) << next.status();
  for (const char* v : {"two", "three"}) {  // the first set is the third
    absl::Status written = (*next)->Write(Bytes(v));
    ASSERT_TRUE(written.ok()) << v << ": " << written;
  }
  EXPECT_EQ((*next)->path(), AnchoredObject::Path::kCreateDestroy);
  EXPECT_EQ(*(*next)->Read().value(), Bytes("three"));
  auto session = hsm_->AcquireSession();
  ASSERT_TRUE(session.ok()) << session.status();
  for (const std::string& name :
       {AnchoredObject::SlotName(kLabel, 0),
        AnchoredObject::SlotName(kLabel, 1), std::string(kLabel) + ".probe"}) {
    EXPECT_TRUE(
        session->FindObjectsWith(CKO_DATA, CKA_APPLICATION, name)->empty())
        << name << " stayed";
  }
}

// Review of `slots` finding 10(b): the old object a migrating write failed
// to destroy is destroyed by the next write, not left for an older binary
// to find (and serve) until the next Open.
TEST_F(AnchoredObjectOwnFaults, FailedMigrationDestroyIsRetriedAtTheNextWrite) {
  ASSERT_NO_FATAL_FAILURE(Shim(/*refuse_set=*/false));
  auto old = AnchoredObject::Open(hsm_, kLabel, kMacLabel,
                                  AnchoredObject::Path::kCreateDestroy);
  ASSERT_TRUE(old.ok()) << old.status();
  ASSERT_TRUE((*old)->Write(Bytes("one")).ok());
  old->reset();
  // In place without the probe, so the failed destroy is the migration's.
  auto head = AnchoredObject::Open(hsm_, kLabel, kMacLabel,
                                   AnchoredObject::Path::kInPlace);
  ASSERT_TRUE(head.ok()) << head.status();
  auto session = hsm_->AcquireSession();
  ASSERT_TRUE(session.ok()) << session.status();
  Arm("bkv_test_fail_next_destroy");
  ASSERT_TRUE((*head)->Write(Bytes("two")).ok());
  ASSERT_EQ(session->FindObjects(CKO_DATA, kLabel)->size(), 1u)
      << "the destroy did not fail: the test tests nothing";
  ASSERT_TRUE((*head)->Write(Bytes("three")).ok());
  EXPECT_TRUE(session->FindObjects(CKO_DATA, kLabel)->empty())
      << "the old object stayed after the next write";
}

// Run only as the second process of SecondProcessIsFencedAndSeen: opens the
// token in $BKV_TEST_CHILD_TOKEN_DIR and writes the next generation.
TEST(AnchoredObjectChild, DISABLED_WritesTheNextGeneration) {
  const char* dir = std::getenv("BKV_TEST_CHILD_TOKEN_DIR");
  ASSERT_NE(dir, nullptr);
  auto dev = PrepareSoftHsmDir(dir, testing::kTestLabel, "",
                               /*allow_create=*/false);
  ASSERT_TRUE(dev.ok()) << dev.status();
  auto pin = ReadPinFile(dev->user_pin_path);
  ASSERT_TRUE(pin.ok()) << pin.status();
  TokenOptions o;
  o.token_label = testing::kTestLabel;
  o.module_path = dev->module_path;
  auto hsm = Pkcs11Hsm::Open(o, *pin);
  ASSERT_TRUE(hsm.ok()) << hsm.status();
  auto head = AnchoredObject::Open(*hsm, kLabel, kMacLabel);
  ASSERT_TRUE(head.ok()) << head.status();
  ASSERT_TRUE((*head)->Write(Bytes("child three")).ok());
}

// Exit status of this test binary run as that second process.
int RunChild(const std::string& token_dir) {
  char self[4096] = {};
  if (readlink("/proc/self/exe", self, sizeof self - 1) <= 0) return -1;
  const std::string cmd =
      "BKV_TEST_CHILD_TOKEN_DIR='" + token_dir + "' '" + self +
      "' --gtest_also_run_disabled_tests "
      "--gtest_filter=AnchoredObjectChild.DISABLED_WritesTheNextGeneration "
      ">/dev/null 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Two processes on one token: SoftHSM re-reads a slot another process
// rewrote (a fresh open here reads it), and this process, holding what it
// read before, is refused its next write instead of undoing the other's.
TEST_F(AnchoredObjectSlots, SecondProcessIsFencedAndSeen) {
  auto head = Open();
  WriteAll(*head, {"one", "two"});
  ASSERT_EQ(RunChild(token_->dir()), 0);
  EXPECT_EQ(ReadAfresh(), "child three");
  absl::Status fenced = head->Write(Bytes("three"));
  EXPECT_TRUE(absl::IsFailedPrecondition(fenced)) << fenced;
  EXPECT_EQ(ReadAfresh(), "child three");
}

// The largest value bkv reads back fits a slot; one byte more is refused
// before anything is written.
TEST_F(AnchoredObjectSlots, LargestValueFitsAndOneMoreIsRefused) {
  auto head = Open();
  std::vector<uint8_t> most(AnchoredObject::kMaxValueSize, 0x5a);
  ASSERT_TRUE(head->Write(most).ok());
  most.push_back(0);
  EXPECT_TRUE(absl::IsInvalidArgument(head->Write(most)));
  head.reset();
  auto again = Open();
  auto value = again->Read();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ((*value)->size(), AnchoredObject::kMaxValueSize);
}

}  // namespace
}  // namespace bkv::hsm
