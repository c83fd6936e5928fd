#include "hsm/self_test.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"

namespace bkv::hsm {
namespace {

using Session = Pkcs11Hsm::Session;

// McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16.
constexpr absl::string_view kGcmKey =
    "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr absl::string_view kGcmIv = "cafebabefacedbaddecaf888";
constexpr absl::string_view kGcmAad =
    "feedfacedeadbeeffeedfacedeadbeefabaddad2";
constexpr absl::string_view kGcmPlaintext =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
constexpr absl::string_view kGcmCiphertextAndTag =
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
    "76fc6ece0f4e1768cddf8853bb2d551b";

// RFC 4231 §4.7, test case 6: 131-byte key of 0xaa.
constexpr absl::string_view kHmacData =
    "Test Using Larger Than Block-Size Key - Hash Key First";
constexpr absl::string_view kHmacSha512 =
    "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
    "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598";

std::vector<uint8_t> Unhex(absl::string_view hex) {
  return *HexDecode(std::string_view(hex.data(), hex.size()));  // constants
}

absl::StatusOr<CK_OBJECT_HANDLE> SessionKey(Session& session, CK_KEY_TYPE type,
                                            std::span<const uint8_t> value) {
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  const bool aes = type == CKK_AES;
  CK_BBOOL ed = aes ? CK_TRUE : CK_FALSE;
  CK_BBOOL sv = aes ? CK_FALSE : CK_TRUE;
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_KEY_TYPE, &type, sizeof(type)},
      {CKA_TOKEN, &no, sizeof(no)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_ENCRYPT, &ed, sizeof(ed)},
      {CKA_DECRYPT, &ed, sizeof(ed)},
      {CKA_SIGN, &sv, sizeof(sv)},
      {CKA_VERIFY, &sv, sizeof(sv)},
      {CKA_VALUE, const_cast<uint8_t*>(value.data()), value.size()},
  };
  return session.CreateObject(tmpl);
}

// Runs `check` with a session key of known value, destroying the key after.
absl::Status WithSessionKey(
    Pkcs11Hsm& hsm, CK_KEY_TYPE type, std::span<const uint8_t> value,
    const std::function<absl::Status(Session&, CK_OBJECT_HANDLE)>& check) {
  BKV_ASSIGN_OR_RETURN(Session session, hsm.AcquireSession());
  BKV_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, SessionKey(session, type, value));
  absl::Status s = check(session, key);
  absl::Status destroyed = session.DestroyObject(key);
  return s.ok() ? destroyed : s;
}

absl::Status AesGcmKat(Pkcs11Hsm& hsm) {
  const auto key = Unhex(kGcmKey), iv = Unhex(kGcmIv), aad = Unhex(kGcmAad),
             pt = Unhex(kGcmPlaintext), expected = Unhex(kGcmCiphertextAndTag);
  return WithSessionKey(
      hsm, CKK_AES, key,
      [&](Session& session, CK_OBJECT_HANDLE k) -> absl::Status {
        BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> ct,
                             session.EncryptAesGcm(k, iv, aad, pt));
        if (ct != expected) {
          return absl::InternalError(
              absl::StrCat("CKM_AES_GCM produced ", HexEncode(ct)));
        }
        BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> back,
                             session.DecryptAesGcm(k, iv, aad, expected));
        if (back != pt) {
          return absl::InternalError("CKM_AES_GCM decryption differs");
        }
        std::vector<uint8_t> tampered = expected;
        tampered.back() ^= 0x01;
        if (session.DecryptAesGcm(k, iv, aad, tampered).ok()) {
          return absl::InternalError(
              "CKM_AES_GCM accepted a ciphertext with a flipped tag bit");
        }
        return absl::OkStatus();
      });
}

absl::Status HmacKat(Pkcs11Hsm& hsm) {
  const std::vector<uint8_t> key(131, 0xaa);
  const std::vector<uint8_t> data(kHmacData.begin(), kHmacData.end());
  const auto expected = Unhex(kHmacSha512);
  return WithSessionKey(
      hsm, CKK_GENERIC_SECRET, key,
      [&](Session& session, CK_OBJECT_HANDLE k) -> absl::Status {
        BKV_ASSIGN_OR_RETURN(SecretBytes mac, session.HmacSha512(k, data));
        if (!ConstantTimeEquals(mac.Reveal(), expected)) {
          return absl::InternalError(
              "CKM_SHA512_HMAC differs from RFC 4231 test case 6");
        }
        return absl::OkStatus();
      });
}

absl::Status SealRoundTrip(const Sealer& sealer) {
  const std::vector<uint8_t> pt = {'b', 'k', 'v', 0x00, 0xff};
  const std::vector<uint8_t> ad = {'s', 'e', 'l', 'f'};
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> sealed, sealer.Seal(pt, ad));
  BKV_ASSIGN_OR_RETURN(std::vector<uint8_t> opened, sealer.Open(sealed, ad));
  if (opened != pt) return absl::InternalError("opened bytes differ");
  const std::vector<uint8_t> other_ad = {'s', 'e', 'l', 'g'};
  if (sealer.Open(sealed, other_ad).ok()) {
    return absl::InternalError("Open accepted the wrong associated data");
  }
  return absl::OkStatus();
}

absl::Status OprfSeedCheck(const KeyedHash& seed) {
  const std::vector<uint8_t> msg = {'s', 'e', 'l', 'f'};
  BKV_ASSIGN_OR_RETURN(SecretBytes a, seed.HmacSha512(msg));
  BKV_ASSIGN_OR_RETURN(SecretBytes b, seed.HmacSha512(msg));
  if (a.size() != 64 || !(a == b)) {
    return absl::InternalError("OPRF seed HMAC is not a stable 64 bytes");
  }
  return absl::OkStatus();
}

absl::Status AkeCheck(const AkeKeyPair& ake) {
  BKV_ASSIGN_OR_RETURN(AkeKeyPair::PublicKey pk,
                       DeriveAkePublicKey(ake.RevealPrivateKey()));
  if (pk != ake.public_key()) {
    return absl::InternalError("AKE public key does not match the scalar");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunSelfTests(std::span<const SelfTest> tests) {
  for (const SelfTest& test : tests) {
    absl::Status s = test.run();
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("self-test '", test.name,
                                                 "' failed: ", s.message()));
    }
  }
  return absl::OkStatus();
}

std::vector<SelfTest> TokenSelfTests(Pkcs11Hsm& hsm, const VaultKeys& keys) {
  return {
      {"aes-gcm-kat", [&hsm] { return AesGcmKat(hsm); }},
      {"hmac-sha512-kat", [&hsm] { return HmacKat(hsm); }},
      {"seal-round-trip", [&keys] { return SealRoundTrip(keys.sealer); }},
      {"oprf-seed", [&keys] { return OprfSeedCheck(keys.oprf_seed); }},
      {"ake-key-pair", [&keys] { return AkeCheck(keys.ake); }},
  };
}

absl::Status RunTokenSelfTests(Pkcs11Hsm& hsm, const VaultKeys& keys) {
  std::vector<SelfTest> tests = TokenSelfTests(hsm, keys);
  return RunSelfTests(tests);
}

}  // namespace bkv::hsm
