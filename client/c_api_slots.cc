// The C ABI's key-slot calls (bkv_slot_* / bkv_slots_* in bkv/bkv.h): a thin
// wrapper of client/key_slots.h. No state directory: the keyring rollback
// check of the CLI is not made here (docs/sdk.md, "Passkeys").
#include <cstdlib>
#include <cstring>

#include "client/c_api_internal.h"
#include "client/key_slots.h"
#include "crypto/random.h"

struct bkv_slot_secret {
  bkv::SlotSecret secret;
};

namespace bkv {
namespace {

using capi::Null;
using capi::ToC;

std::vector<uint8_t> Bytes(const uint8_t* p, size_t n) {
  return std::vector<uint8_t>(p, p + n);
}

bkv_status NewSecret(SlotSecret s, bkv_slot_secret** out, char** err) {
  *out = new bkv_slot_secret{std::move(s)};
  return ToC(absl::OkStatus(), err);
}

bkv_status AddSlot(bkv_store* store, const bkv_slot_secret* opened,
                   const SlotSecret& added, std::vector<uint8_t> params,
                   uint8_t out_slot_id[16], char** err) {
  if (store == nullptr || opened == nullptr || out_slot_id == nullptr) {
    return ToC(Null("store, opened and out_slot_id"), err);
  }
  KeySlots slots(*store->store, {});
  auto id = slots.Add(opened->secret, added, std::move(params));
  if (!id.ok()) return ToC(id.status(), err);
  std::memcpy(out_slot_id, id->data(), id->size());
  return ToC(absl::OkStatus(), err);
}

}  // namespace

namespace capi {
absl::StatusOr<BackupKey> MasterKey(BlobStore& store, const bkv_key& key,
                                    std::string state_dir) {
  KeySlots slots(store, {std::move(state_dir)});
  auto master = slots.MasterFor(key.key);
  if (!key.from_vault ||
      SlotErrorOf(master.status()) != SlotError::kWrongSecret) {
    return master;
  }
  // As the CLI says it (review finding 11): the app must not ask for the
  // password again.
  auto list = slots.List();
  if (!list.ok()) return master;
  for (const SlotInfo& s : *list) {
    if (s.type != SlotType::kVault) continue;
    return SlotStatus(
        SlotError::kTampered,
        absl::DataLossError(
            "the vault released this account's secret but no slot of the set "
            "opens with it: the keyring changed (an old copy of the store, "
            "e.g. from before a rekey), or the account was registered anew; "
            "open the set with another slot"));
  }
  return master;
}
}  // namespace capi
}  // namespace bkv

using bkv::capi::Null;
using bkv::capi::ToC;

extern "C" {

bkv_status bkv_slot_secret_recovery_key(const bkv_key* key,
                                        bkv_slot_secret** out, char** err) {
  if (key == nullptr || out == nullptr) return ToC(Null("key and out"), err);
  return bkv::NewSecret(bkv::SlotSecret::RecoveryKey(key->key), out, err);
}

bkv_status bkv_slot_secret_passkey(const uint8_t* credential_id,
                                   size_t credential_id_len,
                                   const uint8_t prf_output[32],
                                   bkv_slot_secret** out, char** err) {
  if (credential_id == nullptr || credential_id_len == 0 ||
      prf_output == nullptr || out == nullptr) {
    return ToC(Null("credential_id, prf_output and out"), err);
  }
  return bkv::NewSecret(
      bkv::SlotSecret::Passkey(
          bkv::SecretBytes::Copy(std::span<const uint8_t>(prf_output, 32)),
          bkv::Bytes(credential_id, credential_id_len)),
      out, err);
}

bkv_status bkv_slot_secret_vault(const bkv_key* released,
                                 const uint8_t vault_public_key[32],
                                 const char* account, bkv_slot_secret** out,
                                 char** err) {
  if (released == nullptr || vault_public_key == nullptr ||
      account == nullptr || *account == '\0' || out == nullptr) {
    return ToC(Null("released, vault_public_key, account and out"), err);
  }
  bkv::VaultParams p;
  std::memcpy(p.vault_key.data(), vault_public_key, p.vault_key.size());
  p.account = account;
  return bkv::NewSecret(
      bkv::SlotSecret::Vault(released->key.secret(), std::move(p)), out, err);
}

void bkv_slot_secret_free(bkv_slot_secret* secret) { delete secret; }

bkv_status bkv_slots_unlock(bkv_store* store, const bkv_slot_secret* secret,
                            bkv_key** out_master, char** err) {
  if (store == nullptr || secret == nullptr || out_master == nullptr) {
    return ToC(Null("store, secret and out_master"), err);
  }
  bkv::KeySlots slots(*store->store, {});
  auto key = slots.Unlock(secret->secret);
  if (!key.ok()) return ToC(key.status(), err);
  *out_master = new bkv_key{*std::move(key)};
  return ToC(absl::OkStatus(), err);
}

bkv_status bkv_slots_passkeys(bkv_store* store, bkv_passkey_slot** out,
                              size_t* out_count, char** err) {
  if (store == nullptr || out == nullptr || out_count == nullptr) {
    return ToC(Null("store, out and out_count"), err);
  }
  bkv::KeySlots slots(*store->store, {});
  auto list = slots.PasskeyRequests();
  if (!list.ok()) return ToC(list.status(), err);
  auto* arr = static_cast<bkv_passkey_slot*>(
      std::calloc(list->size() + 1, sizeof(bkv_passkey_slot)));
  for (size_t i = 0; i < list->size(); ++i) {
    const bkv::PasskeyRequest& r = (*list)[i];
    std::memcpy(arr[i].slot_id, r.slot.data(), 16);
    std::memcpy(arr[i].salt, r.params.salt.data(), 32);
    arr[i].credential_id_len = r.params.credential_id.size();
    arr[i].credential_id =
        static_cast<uint8_t*>(std::malloc(arr[i].credential_id_len));
    std::memcpy(arr[i].credential_id, r.params.credential_id.data(),
                arr[i].credential_id_len);
    arr[i].rp_id = bkv::capi::CopyString(r.params.rp_id);
  }
  *out = arr;
  *out_count = list->size();
  return ToC(absl::OkStatus(), err);
}

void bkv_passkey_slots_free(bkv_passkey_slot* slots, size_t count) {
  if (slots == nullptr) return;
  for (size_t i = 0; i < count; ++i) {
    std::free(slots[i].credential_id);
    bkv_string_free(slots[i].rp_id);
  }
  std::free(slots);
}

bkv_status bkv_slots_add_passkey(
    bkv_store* store, const bkv_slot_secret* opened, const char* rp_id,
    const uint8_t* credential_id, size_t credential_id_len,
    const uint8_t salt[32], const uint8_t prf_output[32],
    uint8_t out_slot_id[16], char** err) {
  if (rp_id == nullptr || credential_id == nullptr || salt == nullptr ||
      prf_output == nullptr) {
    return ToC(Null("rp_id, credential_id, salt and prf_output"), err);
  }
  bkv::PasskeyParams p;
  p.rp_id = rp_id;
  p.credential_id = bkv::Bytes(credential_id, credential_id_len);
  std::memcpy(p.salt.data(), salt, p.salt.size());
  bkv::SlotSecret added = bkv::SlotSecret::Passkey(
      bkv::SecretBytes::Copy(std::span<const uint8_t>(prf_output, 32)),
      p.credential_id);
  return bkv::AddSlot(store, opened, added, bkv::EncodePasskeyParams(p),
                      out_slot_id, err);
}

bkv_status bkv_slots_add_recovery_key(bkv_store* store,
                                      const bkv_slot_secret* opened,
                                      const bkv_key* new_key,
                                      uint8_t out_slot_id[16], char** err) {
  if (new_key == nullptr) return ToC(Null("new_key"), err);
  return bkv::AddSlot(store, opened, bkv::SlotSecret::RecoveryKey(new_key->key),
                      {}, out_slot_id, err);
}

bkv_status bkv_slots_remove(bkv_store* store, const bkv_slot_secret* opened,
                            const uint8_t slot_id[16], int* out_was_master,
                            char** err) {
  if (store == nullptr || opened == nullptr || slot_id == nullptr) {
    return ToC(Null("store, opened and slot_id"), err);
  }
  bkv::SlotId id;
  std::memcpy(id.data(), slot_id, id.size());
  bkv::KeySlots slots(*store->store, {});
  auto was = slots.Remove(opened->secret, bkv::SlotIdHex(id));
  if (!was.ok()) return ToC(was.status(), err);
  if (out_was_master != nullptr) *out_was_master = *was ? 1 : 0;
  return ToC(absl::OkStatus(), err);
}

bkv_status bkv_slots_rotate_passkey_salt(bkv_store* store,
                                         const bkv_slot_secret* old_output,
                                         const uint8_t new_salt[32],
                                         const uint8_t new_output[32],
                                         char** err) {
  if (store == nullptr || old_output == nullptr || new_salt == nullptr ||
      new_output == nullptr) {
    return ToC(Null("store, old_output, new_salt and new_output"), err);
  }
  std::array<uint8_t, 32> salt;
  std::memcpy(salt.data(), new_salt, salt.size());
  bkv::KeySlots slots(*store->store, {});
  return ToC(
      slots.RotatePasskeySalt(
          old_output->secret, salt,
          bkv::SecretBytes::Copy(std::span<const uint8_t>(new_output, 32))),
      err);
}

bkv_status bkv_random_salt(uint8_t out[32], char** err) {
  if (out == nullptr) return ToC(Null("out"), err);
  bkv::SystemRandom().Bytes(std::span<uint8_t>(out, 32));
  return ToC(absl::OkStatus(), err);
}

}  // extern "C"
