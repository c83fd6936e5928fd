#include "crypto/keyring.h"

#include <sodium.h>

#include <algorithm>
#include <set>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "crypto/aes_gcm_sealer.h"
#include "crypto/byte_io.h"
#include "crypto/hash.h"
#include "crypto/hex.h"
#include "crypto/random.h"

namespace bkv {
namespace {

constexpr std::string_view kMagic = "BKVKEYR1";
constexpr uint16_t kFormat = 1;
constexpr std::string_view kSlotAd = "bkv keyring v1 slot";
constexpr std::string_view kSlotKeyInfo = "bkv keyring v1 slot key";
constexpr std::string_view kRingKeyInfo = "bkv keyring v1 ring key";
constexpr size_t kMacSize = 32;
constexpr size_t kNonceSize = AesGcmSealer::kNonceSize;
constexpr size_t kWrapSize =
    kNonceSize + Keyring::kMasterKeySize + AesGcmSealer::kTagSize;
// slot id, type, two string lengths, the wrap
constexpr size_t kMinSlot = 16 + 1 + 4 + 4 + kWrapSize;
constexpr char kSlotErrorUrl[] = "bkv/slot-error";

std::vector<uint8_t> SlotAd(const SetId& set, const SlotId& id, SlotType type,
                            std::span<const uint8_t> params) {
  ByteWriter w;
  w.Raw(kSlotAd);
  w.U8(0);
  w.Raw(set);
  w.Raw(id);
  w.U8(static_cast<uint8_t>(type));
  w.Bytes(params);
  return w.Take();
}

SecretBytes SlotKek(const SetId& set, const SecretBytes& secret,
                    std::span<const uint8_t> ad) {
  std::vector<uint8_t> info(kSlotKeyInfo.begin(), kSlotKeyInfo.end());
  info.insert(info.end(), ad.begin(), ad.end());
  SecretBytes prk = HkdfExtract(set, secret.Reveal());
  return HkdfExpand(prk.Reveal(), info, 32);
}

std::vector<uint8_t> RingMac(const SetId& set, const SecretBytes& master,
                             std::span<const uint8_t> body) {
  SecretBytes prk = HkdfExtract(set, master.Reveal());
  SecretBytes key = HkdfExpand(prk.Reveal(), AsBytes(kRingKeyInfo), 32);
  SecretBytes mac = HmacSha512(key.Reveal(), {body});
  return {mac.Reveal().begin(), mac.Reveal().begin() + kMacSize};
}

bool KnownType(uint8_t t) { return t >= 1 && t <= 3; }

absl::Status Tampered(std::string_view why) {
  return SlotStatus(
      SlotError::kTampered,
      absl::DataLossError(absl::StrCat(
          "keyring fails authentication: ", std::string(why),
          ": the store changed it (restore the keyring object from a copy "
          "you trust, or open the set with another slot)")));
}

absl::Status CheckParams(SlotType type, std::span<const uint8_t> params) {
  switch (type) {
    case SlotType::kRecoveryKey:
      return params.empty() ? absl::OkStatus()
                            : absl::DataLossError("recovery slot has params");
    case SlotType::kVault:
      return DecodeVaultParams(params).status();
    case SlotType::kPasskey:
      return DecodePasskeyParams(params).status();
  }
  return absl::DataLossError("unknown slot type");
}

}  // namespace

std::string_view SlotTypeName(SlotType type) {
  switch (type) {
    case SlotType::kRecoveryKey:
      return "recovery-key";
    case SlotType::kVault:
      return "vault";
    case SlotType::kPasskey:
      return "passkey";
  }
  return "unknown";
}

absl::Status SlotStatus(SlotError kind, absl::Status status) {
  status.SetPayload(kSlotErrorUrl,
                    absl::Cord(absl::StrCat(static_cast<int>(kind))));
  return status;
}

std::optional<SlotError> SlotErrorOf(const absl::Status& status) {
  auto p = status.GetPayload(kSlotErrorUrl);
  if (!p) return std::nullopt;
  int v = std::string(*p)[0] - '0';
  if (v < 0 || v > static_cast<int>(SlotError::kLastSlot)) return std::nullopt;
  return static_cast<SlotError>(v);
}

std::vector<uint8_t> EncodePasskeyParams(const PasskeyParams& p) {
  ByteWriter w;
  w.Str(p.rp_id);
  w.Bytes(p.credential_id);
  w.Raw(p.salt);
  return w.Take();
}

absl::StatusOr<PasskeyParams> DecodePasskeyParams(
    std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  PasskeyParams p;
  p.rp_id = r.Str();
  std::string cred = r.Str();
  p.credential_id.assign(cred.begin(), cred.end());
  r.Raw(p.salt);
  if (!r.AtEnd() || p.rp_id.empty() || p.credential_id.empty()) {
    return absl::DataLossError("passkey slot parameters do not decode");
  }
  return p;
}

std::vector<uint8_t> EncodeVaultParams(const VaultParams& p) {
  ByteWriter w;
  w.Bytes(p.vault_key);
  w.Str(p.account);
  return w.Take();
}

absl::StatusOr<VaultParams> DecodeVaultParams(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  VaultParams p;
  std::string key = r.Str();
  p.account = r.Str();
  if (!r.AtEnd() || key.size() != p.vault_key.size() || p.account.empty()) {
    return absl::DataLossError("vault slot parameters do not decode");
  }
  std::copy(key.begin(), key.end(), p.vault_key.begin());
  return p;
}

std::string SlotIdHex(const SlotId& id) { return HexEncode(id); }

Keyring Keyring::Create() {
  Keyring k;
  SystemRandom().Bytes(k.set_id_);
  return k;
}

absl::StatusOr<Keyring> Keyring::Decode(std::span<const uint8_t> bytes) {
  if (bytes.size() < kMacSize) return Tampered("shorter than its MAC");
  ByteReader r(bytes.first(bytes.size() - kMacSize));
  Keyring k;
  if (!r.Magic(kMagic)) return Tampered("not a keyring (wrong magic)");
  uint16_t format = static_cast<uint16_t>(r.U8() << 8 | r.U8());
  if (r.ok() && format != kFormat) {
    return absl::UnimplementedError(absl::StrCat(
        "keyring format ", format, " is not supported: update bkv"));
  }
  r.Raw(k.set_id_);
  k.generation_ = r.U64();
  // Generations start at 1; the last one could never be followed.
  if (r.ok() && (k.generation_ == 0 || k.generation_ == UINT64_MAX)) {
    return Tampered("generation out of range");
  }
  uint32_t n = r.Count(kMinSlot);
  if (r.ok() && (n == 0 || n > kMaxSlots)) return Tampered("slot count");
  std::set<SlotId> seen;
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    KeySlot s;
    r.Raw(s.id);
    uint8_t type = r.U8();
    std::string params = r.Str();
    std::string wrap = r.Str();
    if (!r.ok()) break;
    if (!KnownType(type) || params.size() > kMaxParams ||
        wrap.size() != kWrapSize || !seen.insert(s.id).second) {
      return Tampered(absl::StrCat("slot ", i + 1, " is malformed"));
    }
    s.type = static_cast<SlotType>(type);
    s.params.assign(params.begin(), params.end());
    s.wrap.assign(wrap.begin(), wrap.end());
    if (!CheckParams(s.type, s.params).ok()) {
      return Tampered(absl::StrCat("slot ", i + 1, "'s parameters"));
    }
    k.slots_.push_back(std::move(s));
  }
  if (!r.AtEnd()) return Tampered("it does not decode");
  k.mac_.assign(bytes.end() - kMacSize, bytes.end());
  return k;
}

const KeySlot* Keyring::Find(const SlotId& id) const {
  for (const KeySlot& s : slots_) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

std::vector<uint8_t> Keyring::Body() const {
  ByteWriter w;
  w.Raw(kMagic);
  w.U8(kFormat >> 8);
  w.U8(kFormat & 0xff);
  w.Raw(set_id_);
  w.U64(generation_);
  w.U32(static_cast<uint32_t>(slots_.size()));
  for (const KeySlot& s : slots_) {
    w.Raw(s.id);
    w.U8(static_cast<uint8_t>(s.type));
    w.Bytes(s.params);
    w.Bytes(s.wrap);
  }
  return w.Take();
}

absl::StatusOr<std::vector<uint8_t>> Keyring::Wrap(
    const SlotId& id, SlotType type, std::span<const uint8_t> params,
    const SecretBytes& master, const SecretBytes& secret) const {
  if (master.size() != kMasterKeySize || secret.size() != kSecretSize) {
    return absl::InvalidArgumentError(
        "a master key and a slot secret are 32 bytes");
  }
  std::vector<uint8_t> ad = SlotAd(set_id_, id, type, params);
  SecretBytes kek = SlotKek(set_id_, secret, ad);
  std::vector<uint8_t> wrap(kNonceSize);
  SystemRandom().Bytes(wrap);
  auto ct = AesGcmEncrypt(kek.Reveal(), wrap, master.Reveal(), ad);
  if (!ct.ok()) return ct.status();
  wrap.insert(wrap.end(), ct->begin(), ct->end());
  return wrap;
}

absl::StatusOr<SecretBytes> Keyring::Unwrap(const KeySlot& slot,
                                            const SecretBytes& secret) const {
  if (secret.size() != kSecretSize) {
    return absl::InvalidArgumentError("a slot secret is 32 bytes");
  }
  std::vector<uint8_t> ad = SlotAd(set_id_, slot.id, slot.type, slot.params);
  SecretBytes kek = SlotKek(set_id_, secret, ad);
  std::span<const uint8_t> wrap(slot.wrap);
  auto pt = AesGcmDecrypt(kek.Reveal(), wrap.first(kNonceSize),
                          wrap.subspan(kNonceSize), ad);
  if (!pt.ok()) {
    return SlotStatus(
        SlotError::kWrongSecret,
        absl::PermissionDeniedError(absl::StrCat(
            "the ", std::string(SlotTypeName(slot.type)),
            " does not open its slot ", SlotIdHex(slot.id).substr(0, 8),
            slot.type == SlotType::kPasskey
                ? " (the PRF output is for another salt or credential)"
                : " (another key, or the slot was changed)")));
  }
  SecretBytes master = SecretBytes::Copy(*pt);
  sodium_memzero(pt->data(), pt->size());
  return master;
}

bool Keyring::Unwraps(const SlotId& id, const SecretBytes& secret) const {
  const KeySlot* s = Find(id);
  return s != nullptr && Unwrap(*s, secret).ok();
}

bool Keyring::SealedBy(const SecretBytes& master) const {
  if (master.size() != kMasterKeySize || mac_.size() != kMacSize) return false;
  std::vector<uint8_t> mac = RingMac(set_id_, master, Body());
  return sodium_memcmp(mac.data(), mac_.data(), kMacSize) == 0;
}

absl::StatusOr<SecretBytes> Keyring::Open(const SlotId& id,
                                          const SecretBytes& secret) const {
  const KeySlot* s = Find(id);
  if (s == nullptr) {
    return SlotStatus(SlotError::kNoSlot,
                      absl::NotFoundError("the keyring has no such slot"));
  }
  auto master = Unwrap(*s, secret);
  if (!master.ok()) return master.status();
  std::vector<uint8_t> mac = RingMac(set_id_, *master, Body());
  if (mac_.size() != kMacSize ||
      sodium_memcmp(mac.data(), mac_.data(), kMacSize) != 0) {
    return Tampered("its MAC does not verify");
  }
  return master;
}

absl::StatusOr<SlotId> Keyring::Add(const SecretBytes& master, SlotType type,
                                    std::vector<uint8_t> params,
                                    const SecretBytes& secret) {
  if (slots_.size() >= kMaxSlots) {
    return absl::ResourceExhaustedError(
        absl::StrCat("a keyring holds at most ", kMaxSlots, " slots"));
  }
  if (auto s = CheckParams(type, params); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  KeySlot slot;
  slot.type = type;
  do {
    SystemRandom().Bytes(slot.id);
  } while (Find(slot.id) != nullptr);
  auto wrap = Wrap(slot.id, type, params, master, secret);
  if (!wrap.ok()) return wrap.status();
  slot.params = std::move(params);
  slot.wrap = *std::move(wrap);
  slots_.push_back(std::move(slot));
  return slots_.back().id;
}

absl::Status Keyring::Rewrap(const SlotId& id, const SecretBytes& master,
                             std::vector<uint8_t> params,
                             const SecretBytes& secret) {
  auto it = std::find_if(slots_.begin(), slots_.end(),
                         [&](const KeySlot& s) { return s.id == id; });
  if (it == slots_.end()) return absl::NotFoundError("no such slot");
  if (auto s = CheckParams(it->type, params); !s.ok()) {
    return absl::InvalidArgumentError(s.message());
  }
  auto wrap = Wrap(id, it->type, params, master, secret);
  if (!wrap.ok()) return wrap.status();
  it->params = std::move(params);
  it->wrap = *std::move(wrap);
  return absl::OkStatus();
}

absl::Status Keyring::Remove(const SlotId& id) {
  auto it = std::find_if(slots_.begin(), slots_.end(),
                         [&](const KeySlot& s) { return s.id == id; });
  if (it == slots_.end()) return absl::NotFoundError("no such slot");
  if (slots_.size() == 1) {
    return SlotStatus(
        SlotError::kLastSlot,
        absl::FailedPreconditionError(
            "refusing to remove the last slot: nothing would open the set; "
            "add another slot first"));
  }
  slots_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> Keyring::Encode(
    const SecretBytes& master) {
  if (slots_.empty()) {
    return absl::FailedPreconditionError("a keyring needs a slot");
  }
  if (master.size() != kMasterKeySize) {
    return absl::InvalidArgumentError("a master key is 32 bytes");
  }
  ++generation_;
  std::vector<uint8_t> out = Body();
  mac_ = RingMac(set_id_, master, out);
  out.insert(out.end(), mac_.begin(), mac_.end());
  return out;
}

std::array<uint8_t, 16> MasterFingerprint(const SetId& set,
                                          const SecretBytes& master) {
  static constexpr std::string_view kInfo = "bkv keyring v1 master fingerprint";
  SecretBytes prk = HkdfExtract(set, master.Reveal());
  SecretBytes tag = HkdfExpand(prk.Reveal(), AsBytes(kInfo), 16);
  std::array<uint8_t, 16> out;
  std::copy_n(tag.Reveal().begin(), out.size(), out.begin());
  return out;
}

}  // namespace bkv
