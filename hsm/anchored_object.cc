#include "hsm/anchored_object.h"

#include <sodium.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"

namespace bkv::hsm {
namespace {

constexpr size_t kGenSize = 8;

}  // namespace

absl::StatusOr<std::unique_ptr<AnchoredObject>> AnchoredObject::Open(
    std::shared_ptr<Pkcs11Hsm> hsm, absl::string_view label,
    absl::string_view mac_label) {
  std::unique_ptr<AnchoredObject> o(new AnchoredObject(
      std::move(hsm), std::string(label), std::string(mac_label)));
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, o->hsm_->AcquireSession());
  BKV_RETURN_IF_ERROR(o->Find(session));
  return o;
}

// The key, and the newest generation of the object (an older one left by a
// crash inside Write is destroyed here).
absl::Status AnchoredObject::Find(Pkcs11Hsm::Session& session) {
  BKV_ASSIGN_OR_RETURN(auto keys,
                       session.FindObjects(CKO_SECRET_KEY, mac_label_));
  BKV_ASSIGN_OR_RETURN(auto objects, session.FindObjects(CKO_DATA, label_));
  if (keys.size() > 1 || objects.size() > 2) {
    return absl::FailedPreconditionError(absl::StrCat(
        hsm_->Describe(), " holds extra objects labelled ", label_, " or ",
        mac_label_, ": the token was changed outside bkv"));
  }
  if (keys.empty() != objects.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        hsm_->Describe(), " has ", keys.empty() ? "no " : "", mac_label_,
        " but ", objects.empty() ? "no " : "", label_,
        ": the token was changed outside bkv; restore it from its backup"));
  }
  // A copy interrupted by a crash may leave a token object under the
  // staging label; it is never read, so it goes.
  if (auto staged = session.FindObjects(CKO_DATA, StagingLabel());
      staged.ok()) {
    for (CK_OBJECT_HANDLE o : *staged) (void)session.DestroyObject(o);
  }
  if (keys.empty()) return absl::OkStatus();
  key_ = keys[0];
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

absl::StatusOr<std::vector<uint8_t>> AnchoredObject::Mac(
    Pkcs11Hsm::Session& session, std::span<const uint8_t> body) {
  std::vector<uint8_t> message(label_.begin(), label_.end());
  message.push_back(0);
  message.insert(message.end(), body.begin(), body.end());
  BKV_ASSIGN_OR_RETURN(SecretBytes mac, session.HmacSha512(key_, message));
  return std::vector<uint8_t>(mac.Reveal().begin(), mac.Reveal().end());
}

absl::StatusOr<std::pair<uint64_t, std::vector<uint8_t>>> AnchoredObject::Load(
    Pkcs11Hsm::Session& session, CK_OBJECT_HANDLE object) {
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> stored,
                       session.GetAttribute(object, CKA_VALUE));
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

absl::StatusOr<std::optional<std::vector<uint8_t>>> AnchoredObject::Read() {
  if (object_ == CK_INVALID_HANDLE) return std::nullopt;
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm_->AcquireSession());
  BKV_ASSIGN_OR_RETURN(auto loaded, Load(session, object_));
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

absl::Status AnchoredObject::Write(std::span<const uint8_t> value) {
  BKV_ASSIGN_OR_RETURN(Pkcs11Hsm::Session session, hsm_->AcquireSession());
  BKV_RETURN_IF_ERROR(CheckOurs(session));
  if (key_ == CK_INVALID_HANDLE) BKV_RETURN_IF_ERROR(CreateKey(session));
  const uint64_t gen = generation_ + 1;
  std::vector<uint8_t> stored;
  for (int i = 7; i >= 0; --i) stored.push_back(uint8_t(gen >> (8 * i)));
  stored.insert(stored.end(), value.begin(), value.end());
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> mac, Mac(session, stored));
  stored.insert(stored.end(), mac.begin(), mac.end());
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
  return absl::OkStatus();
}

}  // namespace bkv::hsm
