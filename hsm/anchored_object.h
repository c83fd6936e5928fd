#ifndef BKV_HSM_ANCHORED_OBJECT_H_
#define BKV_HSM_ANCHORED_OBJECT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {

// A small value kept inside the token, where only the user PIN reaches it,
// authenticated with HMAC-SHA512 under a sensitive, non-extractable token
// key, so a value changed outside the token's API (edited token files, an
// object from another token) fails Read:
//
//   stored = gen u64 BE || value || HMAC-SHA512(mac key, label || 0x00 ||
//                                               gen || value)
//
// Where the token lets a data object's CKA_LABEL be rewritten (SoftHSM
// does; its CKA_VALUE it keeps read-only), `stored` is the CKA_LABEL of two
// private CKO_DATA token objects named by CKA_APPLICATION label.slot0 and
// label.slot1, generation g in slot g mod 2, rewritten in place with
// C_SetAttributeValue:
//
//   slot i:  CKA_APPLICATION = label ".slot" i,  CKA_LABEL = stored
//
// A crash inside a write
// breaks at most the slot being written, and the other keeps g - 1 whole
// (docs/rollback.md "Slots"). Elsewhere (and on tokens written before) it
// is the CKA_VALUE of one object labelled `label`: Write creates the next
// generation and destroys the previous one. The first Write on a token
// without slots probes the in-place write on a scratch object (no
// generation in it) and falls back per token on a definite refusal. The
// key and the first object are created by the first Write.
// Thread-compatible: callers serialise Write.
class AnchoredObject {
 public:
  static constexpr size_t kMacSize = 64;
  // The largest value Write stores: bkv reads attributes of up to 64 KiB.
  static constexpr size_t kMaxValueSize = (size_t{1} << 16) - 8 - kMacSize;

  enum class Path { kUnknown, kInPlace, kCreateDestroy };
  // Told once which path this token takes, and why.
  using PathListener = std::function<void(Path path, absl::string_view reason)>;

  // `path` kCreateDestroy keeps the create/destroy path even where the
  // token could write in place (tests of old tokens); kInPlace skips the
  // probe (tests); kUnknown probes.
  static absl::StatusOr<std::unique_ptr<AnchoredObject>> Open(
      std::shared_ptr<Pkcs11Hsm> hsm, absl::string_view label,
      absl::string_view mac_label, Path path = Path::kUnknown);
  // Destroys every object of the value labelled `label` (old objects and
  // slots) and its key `mac_label`: what a repair of a broken one removes.
  static absl::Status DestroyAll(Pkcs11Hsm::Session& session,
                                 absl::string_view label,
                                 absl::string_view mac_label);
  // The CKA_APPLICATION naming slot 0 or 1 of the value labelled `label`.
  static std::string SlotName(absl::string_view label, int slot) {
    return absl::StrCat(label, slot == 0 ? ".slot0" : ".slot1");
  }

  // nullopt when neither the object nor its key exist yet. DataLoss when the
  // MAC fails (of both slots), FailedPrecondition when only one of value
  // and key exists.
  absl::StatusOr<std::optional<std::vector<uint8_t>>> Read();
  absl::Status Write(std::span<const uint8_t> value);

  // kUnknown until the first Write on a token without slots.
  Path path() const { return path_.load(); }
  // Called at once if the path is known, else when the first Write decides.
  void SetPathListener(PathListener listener);

 private:
  struct Slot {
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    std::vector<uint8_t> stored;  // as this process last wrote or read it
    // Failed writes' bytes since the last success: any may be there.
    std::vector<std::vector<uint8_t>> attempts;
  };
  // What a slot holds against what this process last saw there.
  enum class Seen {
    kAbsent,  // no object, and this process knew none
    kOurs,    // what this process wrote, read or tried there
    kBroken,  // this process's object, gone or unreadable: a crash or a
              // failed write of ours (SoftHSM hides an object whose file
              // a crash or a failed store() cut)
    kOther,   // bytes or an object this process never wrote: another writer
  };
  static constexpr size_t kMaxAttempts = 8;

  AnchoredObject(std::shared_ptr<Pkcs11Hsm> hsm, std::string label,
                 std::string mac_label)
      : hsm_(std::move(hsm)),
        label_(std::move(label)),
        mac_label_(std::move(mac_label)) {}
  absl::Status Find(Pkcs11Hsm::Session& session);
  absl::Status FindObjects(Pkcs11Hsm::Session& session,
                           const std::vector<CK_OBJECT_HANDLE>& objects);
  absl::Status FindSlots(Pkcs11Hsm::Session& session,
                         const std::vector<CK_OBJECT_HANDLE> (&slots)[2]);
  absl::Status CheckOurs(Pkcs11Hsm::Session& session);
  absl::StatusOr<Seen> Observe(Pkcs11Hsm::Session& session, int slot);
  // The compare before a slot write; true when slot `next` is to be made
  // afresh (it is absent or broken).
  absl::StatusOr<bool> CheckSlots(Pkcs11Hsm::Session& session, int next);
  // The object holding exactly `stored`, if a failed create made it; else
  // `failure`.
  absl::StatusOr<CK_OBJECT_HANDLE> FindWritten(Pkcs11Hsm::Session& session,
                                               std::span<const uint8_t> stored,
                                               const absl::Status& failure);
  absl::StatusOr<std::vector<uint8_t>> Mac(Pkcs11Hsm::Session& session,
                                           std::span<const uint8_t> body);
  // The verified generation and value of `stored`.
  absl::StatusOr<std::pair<uint64_t, std::vector<uint8_t>>> Verify(
      Pkcs11Hsm::Session& session, std::span<const uint8_t> stored);
  absl::StatusOr<std::pair<uint64_t, std::vector<uint8_t>>> Load(
      Pkcs11Hsm::Session& session, CK_OBJECT_HANDLE object);
  absl::StatusOr<CK_OBJECT_HANDLE> Create(Pkcs11Hsm::Session& session,
                                          std::span<const uint8_t> stored);
  absl::StatusOr<CK_OBJECT_HANDLE> CreateDirect(Pkcs11Hsm::Session& session,
                                                std::span<const uint8_t> stored,
                                                bool on_token,
                                                absl::string_view label);
  // A private, modifiable data object named `name` by CKA_APPLICATION,
  // holding `stored` in CKA_LABEL: a slot, or the probe's scratch object.
  absl::StatusOr<CK_OBJECT_HANDLE> CreateSlot(Pkcs11Hsm::Session& session,
                                              absl::string_view name,
                                              std::span<const uint8_t> stored);
  absl::Status WriteObject(Pkcs11Hsm::Session& session,
                           std::span<const uint8_t> stored, uint64_t gen);
  absl::Status WriteSlot(Pkcs11Hsm::Session& session,
                         std::span<const uint8_t> stored, uint64_t gen);
  absl::Status Probe(Pkcs11Hsm::Session& session,
                     std::span<const uint8_t> stored, uint64_t gen);
  // A scratch object (never a slot) created and rewritten in place at the
  // largest size: OK, or how the token refused.
  absl::Status ProbeInPlace(Pkcs11Hsm::Session& session);
  absl::Status PickSlot(Pkcs11Hsm::Session& session, int i,
                        const std::vector<CK_OBJECT_HANDLE>& found,
                        bool* verified);
  // Slots hold the newest generation: the old objects go.
  void DropObjects(Pkcs11Hsm::Session& session);
  void Decide(Path path, absl::string_view reason);
  // Where Create builds the next generation before copying it to the token.
  std::string StagingLabel() const { return label_ + ".staging"; }
  std::string SlotName(int slot) const { return SlotName(label_, slot); }
  std::string ProbeName() const { return label_ + ".probe"; }
  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindSlot(
      Pkcs11Hsm::Session& session, int slot);
  absl::Status CreateKey(Pkcs11Hsm::Session& session);

  std::shared_ptr<Pkcs11Hsm> hsm_;
  const std::string label_, mac_label_;
  CK_OBJECT_HANDLE key_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE object_ = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE leftover_ = CK_INVALID_HANDLE;  // an older one not destroyed
  Slot slots_[2];
  uint64_t generation_ = 0;
  bool current_in_slot_ = false;  // generation_ is slots_[generation_ % 2]
  std::atomic<Path> path_ = Path::kUnknown;  // read by metrics threads
  std::string path_reason_;
  PathListener listener_;
};

}  // namespace bkv::hsm

#endif  // BKV_HSM_ANCHORED_OBJECT_H_
