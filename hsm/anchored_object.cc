#include "hsm/anchored_object.h"

#include <sodium.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"
#include "hsm/pkcs11_status.h"

namespace bkv::hsm {
namespace {

constexpr size_t kGenSize = 8;

bool Same(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// A token's answer that it does not do this (as opposed to a failure that
// may pass: a lost session, a busy or full device).
bool DefiniteRefusal(const absl::Status& status) {
  const std::optional<CK_RV> rv = RvFromStatus(status);
  return rv == CKR_ATTRIBUTE_READ_ONLY || rv == CKR_ACTION_PROHIBITED ||
         rv == CKR_ATTRIBUTE_VALUE_INVALID ||
         rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_TEMPLATE_INCONSISTENT ||
         rv == CKR_FUNCTION_NOT_SUPPORTED;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AnchoredObject>> AnchoredObject::Open(
    std::shared_ptr<Pkcs11Hsm> hsm, absl::string_view label,
    absl::string_view mac_label, Path path) {
  std::unique_ptr<AnchoredObject> o(new AnchoredObject(
      std::move(hsm), std::string(label), std::string(mac_label)));
  o->path_ = path;
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, o->hsm_->AcquireSession());
  BKV_RETURN_IF_ERROR(o->Find(session));
  return o;
}

absl::Status AnchoredObject::DestroyAll(Pkcs11Hsm::Session& session,
                                        absl::string_view label,
                                        absl::string_view mac_label) {
  const std::tuple<CK_OBJECT_CLASS, CK_ATTRIBUTE_TYPE, std::string> all[] = {
      {CKO_DATA, CKA_LABEL, std::string(label)},
      {CKO_DATA, CKA_APPLICATION, SlotName(label, 0)},
      {CKO_DATA, CKA_APPLICATION, SlotName(label, 1)},
      {CKO_DATA, CKA_APPLICATION, absl::StrCat(label, ".probe")},
      {CKO_SECRET_KEY, CKA_LABEL, std::string(mac_label)}};
  for (const auto& [cls, type, name] : all) {
    BKV_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                         session.FindObjectsWith(cls, type, name));
    for (CK_OBJECT_HANDLE h : found) {
      BKV_RETURN_IF_ERROR(session.DestroyObject(h));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> AnchoredObject::FindSlot(
    Pkcs11Hsm::Session& session, int slot) {
  return session.FindObjectsWith(CKO_DATA, CKA_APPLICATION, SlotName(slot));
}

void AnchoredObject::SetPathListener(PathListener listener) {
  listener_ = std::move(listener);
  if (path_ != Path::kUnknown && listener_)
    listener_(path_.load(), path_reason_);
}

void AnchoredObject::Decide(Path path, absl::string_view reason) {
  path_ = path;
  path_reason_ = std::string(reason);
  if (listener_) listener_(path, path_reason_);
}

// The key, the old objects and the slots; the newest generation among them.
absl::Status AnchoredObject::Find(Pkcs11Hsm::Session& session) {
  BKV_ASSIGN_OR_RETURN(auto keys,
                       session.FindObjects(CKO_SECRET_KEY, mac_label_));
  BKV_ASSIGN_OR_RETURN(auto objects, session.FindObjects(CKO_DATA, label_));
  std::vector<CK_OBJECT_HANDLE> slots[2];
  for (int i = 0; i < 2; ++i) {
    BKV_ASSIGN_OR_RETURN(slots[i], FindSlot(session, i));
  }
  if (keys.size() > 1 || objects.size() > 2) {
    return absl::FailedPreconditionError(absl::StrCat(
        hsm_->Describe(), " holds extra objects labelled ", label_,
        "(.slotN) or ", mac_label_, ": the token was changed outside bkv"));
  }
  const bool none = objects.empty() && slots[0].empty() && slots[1].empty();
  if (keys.empty() != none) {
    return absl::FailedPreconditionError(absl::StrCat(
        hsm_->Describe(), " has ", keys.empty() ? "no " : "", mac_label_,
        " but ", none ? "no " : "", label_,
        ": the token was changed outside bkv; restore it from its backup"));
  }
  // A copy or a probe interrupted by a crash may leave a token object
  // under the staging label or the probe's name; never read, it goes.
  if (auto staged = session.FindObjects(CKO_DATA, StagingLabel());
      staged.ok()) {
    for (CK_OBJECT_HANDLE o : *staged) (void)session.DestroyObject(o);
  }
  if (auto probes =
          session.FindObjectsWith(CKO_DATA, CKA_APPLICATION, ProbeName());
      probes.ok()) {
    for (CK_OBJECT_HANDLE o : *probes) (void)session.DestroyObject(o);
  }
  if (keys.empty()) return absl::OkStatus();
  key_ = keys[0];
  BKV_RETURN_IF_ERROR(FindObjects(session, objects));
  return FindSlots(session, slots);
}

// The newest of the create/destroy objects (an older one left by a crash
// inside Write is destroyed here).
absl::Status AnchoredObject::FindObjects(
    Pkcs11Hsm::Session& session, const std::vector<CK_OBJECT_HANDLE>& objects) {
  std::vector<uint8_t> kept;
  for (CK_OBJECT_HANDLE o : objects) {
    BKV_ASSIGN_OR_RETURN(auto loaded, Load(session, o));
    if (object_ != CK_INVALID_HANDLE && loaded.first == generation_ &&
        loaded.second != kept) {
      // Two writers (or a retried create) made different next values.
      return absl::FailedPreconditionError(absl::StrCat(
          hsm_->Describe(), " holds two different ", label_,
          " objects of generation ", generation_,
          ": two writers used the token; the operator must pick one "
          "(docs/rollback.md \"Head table\")"));
    }
    if (object_ == CK_INVALID_HANDLE || loaded.first > generation_) {
      kept = loaded.second;
      if (object_ != CK_INVALID_HANDLE) (void)session.DestroyObject(object_);
      object_ = o;
      generation_ = loaded.first;
    } else {
      (void)session.DestroyObject(o);
    }
  }
  return absl::OkStatus();
}

// A slot that fails its MAC (or holds the other slot's parity) is the one a
// crash broke while it was written; the other one holds the generation
// before, which was never superseded by an acknowledged one.
absl::Status AnchoredObject::FindSlots(
    Pkcs11Hsm::Session& session,
    const std::vector<CK_OBJECT_HANDLE> (&slots)[2]) {
  if (slots[0].empty() && slots[1].empty()) return absl::OkStatus();
  bool verified = false;
  for (int i = 0; i < 2; ++i) {
    BKV_RETURN_IF_ERROR(PickSlot(session, i, slots[i], &verified));
  }
  if (path_ == Path::kUnknown) {
    Decide(Path::kInPlace, "the token holds slots written in place");
  }
  if (!verified && object_ == CK_INVALID_HANDLE) {
    return absl::DataLossError(absl::StrCat(
        hsm_->Describe(), ": both slots of ", label_,
        " fail their MAC (changed outside bkv): restore the token"));
  }
  if (current_in_slot_) DropObjects(session);
  return absl::OkStatus();
}

// Slot i is the object of the highest verifying generation among those
// named slot i. More than one is left by our own failed write whose object
// was made again (its broken object came back readable); the others go.
// Two verifying objects of one generation with different bytes are two
// writers, refused as on the create/destroy path.
absl::Status AnchoredObject::PickSlot(
    Pkcs11Hsm::Session& session, int i,
    const std::vector<CK_OBJECT_HANDLE>& found, bool* verified) {
  Slot& slot = slots_[i];
  std::optional<uint64_t> best;
  for (CK_OBJECT_HANDLE o : found) {
    auto raw = session.GetAttribute(o, CKA_LABEL);
    std::optional<uint64_t> gen;
    if (raw.ok()) {
      auto loaded = Verify(session, *raw);
      if (loaded.ok() && loaded->first % 2 == uint64_t(i)) gen = loaded->first;
    }
    const bool good = gen.has_value();
    if (good && best == gen && !Same(*raw, slot.stored)) {
      return absl::FailedPreconditionError(absl::StrCat(
          hsm_->Describe(), " holds two different ", SlotName(i),
          " objects of generation ", *best,
          ": two writers used the token; the operator must pick one "
          "(docs/rollback.md \"Head table\")"));
    }
    if (slot.handle == CK_INVALID_HANDLE || (good && (!best || *gen > *best))) {
      if (slot.handle != CK_INVALID_HANDLE) {
        (void)session.DestroyObject(slot.handle);
      }
      slot.handle = o;
      slot.stored = raw.ok() ? *std::move(raw) : std::vector<uint8_t>();
      if (good) best = gen;
    } else {
      (void)session.DestroyObject(o);
    }
  }
  if (!best) return absl::OkStatus();
  *verified = true;
  if (*best > generation_) {
    generation_ = *best;
    current_in_slot_ = true;
  }
  return absl::OkStatus();
}

// One that fails to go is tried again at the next write (review of branch
// slots, finding 10: an older binary must not find it and serve it), and by
// the next Open.
void AnchoredObject::DropObjects(Pkcs11Hsm::Session& session) {
  for (CK_OBJECT_HANDLE* o : {&object_, &leftover_}) {
    if (*o == CK_INVALID_HANDLE) continue;
    const absl::Status destroyed = session.DestroyObject(*o);
    if (destroyed.ok() ||
        RvFromStatus(destroyed) == CK_RV{CKR_OBJECT_HANDLE_INVALID}) {
      *o = CK_INVALID_HANDLE;
    }
  }
}

absl::StatusOr<std::vector<uint8_t>> AnchoredObject::Mac(
    Pkcs11Hsm::Session& session, std::span<const uint8_t> body) {
  std::vector<uint8_t> message(label_.begin(), label_.end());
  message.push_back(0);
  message.insert(message.end(), body.begin(), body.end());
  BKV_ASSIGN_OR_RETURN(SecretBytes mac, session.HmacSha512(key_, message));
  return std::vector<uint8_t>(mac.Reveal().begin(), mac.Reveal().end());
}

absl::StatusOr<std::pair<uint64_t, std::vector<uint8_t>>>
AnchoredObject::Verify(Pkcs11Hsm::Session& session,
                       std::span<const uint8_t> stored) {
  if (stored.size() < kGenSize + kMacSize) {
    return absl::DataLossError(
        absl::StrCat(hsm_->Describe(), ": object ", label_, " is truncated"));
  }
  const std::span<const uint8_t> body(stored.data(), stored.size() - kMacSize);
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> mac, Mac(session, body));
  if (sodium_memcmp(mac.data(), stored.data() + body.size(), kMacSize) != 0) {
    return absl::DataLossError(absl::StrCat(
        hsm_->Describe(), ": object ", label_,
        " fails its MAC (changed outside bkv): restore the token"));
  }
  uint64_t gen = 0;
  for (size_t i = 0; i < kGenSize; ++i) gen = (gen << 8) | body[i];
  return std::make_pair(
      gen, std::vector<uint8_t>(body.begin() + kGenSize, body.end()));
}

absl::StatusOr<std::pair<uint64_t, std::vector<uint8_t>>> AnchoredObject::Load(
    Pkcs11Hsm::Session& session, CK_OBJECT_HANDLE object) {
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> stored,
                       session.GetAttribute(object, CKA_VALUE));
  return Verify(session, stored);
}

absl::StatusOr<std::optional<std::vector<uint8_t>>> AnchoredObject::Read() {
  if (!current_in_slot_ && object_ == CK_INVALID_HANDLE) return std::nullopt;
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm_->AcquireSession());
  std::pair<uint64_t, std::vector<uint8_t>> loaded;
  if (current_in_slot_) {
    BKV_ASSIGN_OR_RETURN(
        auto raw,
        session.GetAttribute(slots_[generation_ % 2].handle, CKA_LABEL));
    BKV_ASSIGN_OR_RETURN(loaded, Verify(session, raw));
  } else {
    BKV_ASSIGN_OR_RETURN(loaded, Load(session, object_));
  }
  return std::optional<std::vector<uint8_t>>(std::move(loaded.second));
}

absl::StatusOr<CK_OBJECT_HANDLE> AnchoredObject::CreateDirect(
    Pkcs11Hsm::Session& session, std::span<const uint8_t> stored, bool on_token,
    absl::string_view label) {
  CK_OBJECT_CLASS data = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL token = on_token ? CK_TRUE : CK_FALSE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &data, sizeof(data)},
      {CKA_TOKEN, &token, sizeof(token)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
      {CKA_VALUE, const_cast<uint8_t*>(stored.data()), stored.size()},
  };
  return session.CreateObject(tmpl);
}

// SoftHSM's file store rewrites a new token object's file once per default
// attribute C_CreateObject fills in (~11 open/ftruncate/write/close), but a
// C_CopyObject into the token writes it twice. So the object is staged in
// the session under another label (nothing that looks for `label_` ever
// sees it) and copied to the token with its real label: the same
// attributes as a direct create. A token that cannot copy gets the direct
// create, unless the failed copy took after all (then it is adopted, so the
// write makes one object of its generation).
absl::StatusOr<CK_OBJECT_HANDLE> AnchoredObject::Create(
    Pkcs11Hsm::Session& session, std::span<const uint8_t> stored) {
  const std::string staging = StagingLabel();
  auto staged = CreateDirect(session, stored, /*on_token=*/false, staging);
  if (!staged.ok()) return CreateDirect(session, stored, true, label_);
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE to_token[] = {
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_LABEL, const_cast<char*>(label_.data()), label_.size()},
  };
  absl::StatusOr<CK_OBJECT_HANDLE> copied =
      session.CopyObject(*staged, to_token);
  // A session object left over only costs memory until the session ends.
  (void)session.DestroyObject(*staged);
  if (copied.ok()) return copied;
  copied = FindWritten(session, stored, copied.status());
  if (copied.ok()) return copied;
  return CreateDirect(session, stored, true, label_);
}

absl::Status AnchoredObject::CreateKey(Pkcs11Hsm::Session& session) {
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_KEY_TYPE type = CKK_GENERIC_SECRET;
  CK_ULONG size = 64;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_VALUE_LEN, &size, sizeof(size)},
      {CKA_LABEL, const_cast<char*>(mac_label_.data()), mac_label_.size()},
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_SENSITIVE, &yes, sizeof(yes)},
      {CKA_EXTRACTABLE, &no, sizeof(no)},
      {CKA_MODIFIABLE, &no, sizeof(no)},
      {CKA_SIGN, &yes, sizeof(yes)},
      {CKA_VERIFY, &yes, sizeof(yes)},
      {CKA_ENCRYPT, &no, sizeof(no)},
      {CKA_DECRYPT, &no, sizeof(no)},
      {CKA_WRAP, &no, sizeof(no)},
      {CKA_UNWRAP, &no, sizeof(no)},
      {CKA_DERIVE, &no, sizeof(no)},
  };
  BKV_ASSIGN_OR_RETURN(key_,
                       session.GenerateKey(CKM_GENERIC_SECRET_KEY_GEN, tmpl));
  return absl::OkStatus();
}

// The token holds exactly the object this instance wrote last (or none
// before its first write): otherwise another writer (a second vault node on
// the token, a re-anchor behind a running vault) has moved it, and writing
// on would silently undo that writer's heads.
absl::Status AnchoredObject::CheckOurs(Pkcs11Hsm::Session& session) {
  BKV_ASSIGN_OR_RETURN(auto objects, session.FindObjects(CKO_DATA, label_));
  std::erase(objects, leftover_);  // ours too, if its destroy failed
  const bool ours = object_ == CK_INVALID_HANDLE
                        ? objects.empty()
                        : objects.size() == 1 && objects[0] == object_;
  if (ours) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      hsm_->Describe(), ": object ", label_, " (generation ", generation_,
      ") was replaced by another writer since this process read it: another "
      "vault process or a re-anchor uses the same token; stop all but one "
      "and restart it"));
}

absl::StatusOr<CK_OBJECT_HANDLE> AnchoredObject::FindWritten(
    Pkcs11Hsm::Session& session, std::span<const uint8_t> stored,
    const absl::Status& failure) {
  auto objects = session.FindObjects(CKO_DATA, label_);
  if (!objects.ok()) return failure;
  for (CK_OBJECT_HANDLE o : *objects) {
    if (o == object_ || o == leftover_) continue;
    auto value = session.GetAttribute(o, CKA_VALUE);
    if (value.ok() && std::equal(value->begin(), value->end(), stored.begin(),
                                 stored.end())) {
      return o;
    }
  }
  return failure;
}

absl::StatusOr<CK_OBJECT_HANDLE> AnchoredObject::CreateSlot(
    Pkcs11Hsm::Session& session, absl::string_view name,
    std::span<const uint8_t> stored) {
  CK_OBJECT_CLASS data = CKO_DATA;
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &data, sizeof(data)},
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_MODIFIABLE, &yes, sizeof(yes)},
      {CKA_APPLICATION, const_cast<char*>(name.data()), name.size()},
      {CKA_LABEL, const_cast<uint8_t*>(stored.data()), stored.size()},
  };
  return session.CreateObject(tmpl);
}

// What slot i holds against what this process last saw there. A slot
// whose object this process never knew but whose bytes are one of its
// failed attempts (a create that took, its answer lost) is adopted.
absl::StatusOr<AnchoredObject::Seen> AnchoredObject::Observe(
    Pkcs11Hsm::Session& session, int i) {
  Slot& slot = slots_[i];
  auto ours = [&slot](std::span<const uint8_t> raw) {
    return Same(raw, slot.stored) ||
           std::ranges::any_of(slot.attempts,
                               [raw](const auto& a) { return Same(raw, a); });
  };
  if (slot.handle != CK_INVALID_HANDLE) {
    auto raw = session.GetAttribute(slot.handle, CKA_LABEL);
    if (raw.ok()) return ours(*raw) ? Seen::kOurs : Seen::kOther;
  }
  BKV_ASSIGN_OR_RETURN(auto found, FindSlot(session, i));
  std::erase(found, slot.handle);
  if (found.empty()) {
    return slot.handle == CK_INVALID_HANDLE ? Seen::kAbsent : Seen::kBroken;
  }
  if (slot.handle != CK_INVALID_HANDLE || found.size() > 1) {
    return Seen::kOther;  // an object beside ours: made by someone else
  }
  auto raw = session.GetAttribute(found[0], CKA_LABEL);
  if (!raw.ok() || slot.attempts.empty() || !ours(*raw)) return Seen::kOther;
  slot.handle = found[0];
  return Seen::kOurs;
}

// The compare half of a compare-and-set the token cannot do in one call
// (docs/rollback.md "Slots"): the slot holding generation_ holds exactly
// what this process wrote or read there; the slot to be written holds what
// this process last saw or tried there, or is absent or broken by our own
// crash or failed write (then it is made again: never a fence).
absl::StatusOr<bool> AnchoredObject::CheckSlots(Pkcs11Hsm::Session& session,
                                                int next) {
  bool fresh = false;
  for (int i = 0; i < 2; ++i) {
    BKV_ASSIGN_OR_RETURN(const Seen seen, Observe(session, i));
    const bool holds_current = i != next && current_in_slot_;
    if (seen == Seen::kOurs || seen == Seen::kAbsent) {
      if (i == next) fresh = seen == Seen::kAbsent;
      if (!holds_current || seen == Seen::kOurs) continue;
    } else if (seen == Seen::kBroken && !holds_current) {
      if (i == next) fresh = true;
      continue;
    } else if (seen == Seen::kBroken) {
      return absl::UnavailableError(absl::StrCat(
          hsm_->Describe(), ": ", SlotName(i), " (generation ", generation_,
          ") cannot be read or was removed; nothing was written: check the "
          "token, and restart the vault if it stays so"));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        hsm_->Describe(), ": ", SlotName(i), " (generation ", generation_,
        ") was ", seen == Seen::kOther ? "rewritten" : "removed",
        " by another writer since this process read it: another vault "
        "process or a re-anchor uses the same token; stop all but one and "
        "restart it"));
  }
  return fresh;
}

absl::Status AnchoredObject::WriteSlot(Pkcs11Hsm::Session& session,
                                       std::span<const uint8_t> stored,
                                       uint64_t gen) {
  const int next = static_cast<int>(gen % 2);
  BKV_ASSIGN_OR_RETURN(const bool fresh, CheckSlots(session, next));
  Slot& slot = slots_[next];
  absl::Status written;
  if (fresh) {
    // Ours, broken: a destroy that fails leaves an object Open drops.
    if (slot.handle != CK_INVALID_HANDLE) {
      (void)session.DestroyObject(slot.handle);
    }
    absl::StatusOr<CK_OBJECT_HANDLE> made =
        CreateSlot(session, SlotName(next), stored);
    slot.handle = made.ok() ? *made : CK_INVALID_HANDLE;
    written = made.status();
  } else {
    written = session.SetAttribute(slot.handle, CKA_LABEL, stored);
  }
  if (!written.ok()) {
    if (slot.attempts.size() == kMaxAttempts) {
      slot.attempts.erase(slot.attempts.begin());
    }
    slot.attempts.emplace_back(stored.begin(), stored.end());
    if (!DefiniteRefusal(written)) return written;
    return absl::FailedPreconditionError(absl::StrCat(
        hsm_->Describe(), " holds in-place slots of ", label_,
        " but refused to write ", SlotName(next), ": ", written.message(),
        "; a token must keep allowing what its probe allowed"));
  }
  slot.stored.assign(stored.begin(), stored.end());
  slot.attempts.clear();
  generation_ = gen;
  current_in_slot_ = true;
  DropObjects(session);
  return absl::OkStatus();
}

absl::Status AnchoredObject::ProbeInPlace(Pkcs11Hsm::Session& session) {
  std::vector<uint8_t> bytes(kGenSize + kMaxValueSize + kMacSize, 0);
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE probe,
                       CreateSlot(session, ProbeName(), bytes));
  std::fill(bytes.begin(), bytes.end(), 0xff);
  absl::Status set = session.SetAttribute(probe, CKA_LABEL, bytes);
  // One left behind holds no generation; Open removes it.
  (void)session.DestroyObject(probe);
  return set;
}

// The first write on a token without slots probes the in-place write on a
// scratch object at the largest size, before any generation is written: a
// token that definitely refuses keeps the create/destroy path; an
// undecided answer (a lost session, a busy device) fails this write only.
absl::Status AnchoredObject::Probe(Pkcs11Hsm::Session& session,
                                   std::span<const uint8_t> stored,
                                   uint64_t gen) {
  BKV_RETURN_IF_ERROR(CheckOurs(session));
  if (absl::Status refused = ProbeInPlace(session); !refused.ok()) {
    if (!DefiniteRefusal(refused)) return refused;
    Decide(Path::kCreateDestroy,
           absl::StrCat("the token refused an in-place write: ",
                        refused.message()));
    return WriteObject(session, stored, gen);
  }
  Decide(Path::kInPlace, "the token rewrites a data object's CKA_LABEL");
  return WriteSlot(session, stored, gen);
}

absl::Status AnchoredObject::WriteObject(Pkcs11Hsm::Session& session,
                                         std::span<const uint8_t> stored,
                                         uint64_t gen) {
  BKV_RETURN_IF_ERROR(CheckOurs(session));
  absl::StatusOr<CK_OBJECT_HANDLE> next = Create(session, stored);
  // A create that failed after it took (a network HSM's lost answer) is
  // found and adopted, so the next write does not make a second `gen`.
  if (!next.ok()) next = FindWritten(session, stored, next.status());
  if (!next.ok()) return next.status();
  // The new generation is in the token: the write is done. A previous one
  // that fails to go is removed by the next Open.
  if (object_ != CK_INVALID_HANDLE && !session.DestroyObject(object_).ok()) {
    leftover_ = object_;
  } else if (leftover_ != CK_INVALID_HANDLE &&
             session.DestroyObject(leftover_).ok()) {
    leftover_ = CK_INVALID_HANDLE;
  }
  object_ = *next;
  generation_ = gen;
  current_in_slot_ = false;  // slots, if any, hold older generations now
  return absl::OkStatus();
}

absl::Status AnchoredObject::Write(std::span<const uint8_t> value) {
  if (value.size() > kMaxValueSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        label_, ": a value of ", value.size(), " bytes is over the ",
        kMaxValueSize, " an anchored object holds"));
  }
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm_->AcquireSession());
  if (key_ == CK_INVALID_HANDLE) BKV_RETURN_IF_ERROR(CreateKey(session));
  const uint64_t gen = generation_ + 1;
  std::vector<uint8_t> stored;
  for (int i = 7; i >= 0; --i) stored.push_back(uint8_t(gen >> (8 * i)));
  stored.insert(stored.end(), value.begin(), value.end());
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> mac, Mac(session, stored));
  stored.insert(stored.end(), mac.begin(), mac.end());
  switch (path_.load()) {
    case Path::kInPlace:
      return WriteSlot(session, stored, gen);
    case Path::kCreateDestroy:
      return WriteObject(session, stored, gen);
    case Path::kUnknown:
      break;
  }
  return Probe(session, stored, gen);
}

}  // namespace bkv::hsm
