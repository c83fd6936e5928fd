#ifndef BKV_HSM_KEY_LABELS_H_
#define BKV_HSM_KEY_LABELS_H_

#include "absl/strings/string_view.h"

namespace bkv::hsm {

// CKA_LABEL of every token object bkv uses. The -v1 suffix leaves room for
// rotation: a later key gets -v2 and a new sealed-record format byte.
//
//   object                class            what it is
//   bkv-record-seal-v1    CKO_SECRET_KEY   AES-256, CKM_AES_GCM only
//   bkv-oprf-seed-v1      CKO_SECRET_KEY   64-byte generic secret,
//                                          CKM_SHA512_HMAC only
//   bkv-ake-wrap-v1       CKO_SECRET_KEY   AES-256, CKM_AES_KEY_WRAP_PAD only
//   bkv-ake-private-v1    CKO_DATA         AKE private scalar wrapped by
//                                          bkv-ake-wrap-v1 (private object)
//   bkv-ake-public-v1     CKO_DATA         AKE public key, 32 bytes
//   bkv-fresh-heads-v1    CKO_DATA         freshness heads, private,
//                                          docs/rollback.md
//   bkv-fresh-mac-v1      CKO_SECRET_KEY   64-byte generic secret MACing
//                                          them, CKM_SHA512_HMAC only
//   bkv-fresh-endorse-v1  CKO_PRIVATE_KEY  Ed25519, CKM_EDDSA sign only,
//                         CKO_PUBLIC_KEY   never extractable: the node's
//                                          endorsement key (quorum)
//   bkv-fresh-endorsed-v1 CKO_DATA         the endorser's state, private,
//   bkv-fresh-endorsed-mac-v1              MACed like the heads
//   bkv-fresh-members-v1  CKO_DATA         the members list `cluster form`
//   bkv-fresh-members-mac-v1               wrote, private, MACed likewise
//
// All are token objects; the three keys are CKA_SENSITIVE and CKA_PRIVATE,
// extractable only under a CKA_TRUSTED key (CKA_WRAP_WITH_TRUSTED; made by
// `hsm init` since the cloning ceremony) or not at all (older tokens, and
// tokens the keys were imported to).
//
// The cloning ceremony (key_clone.h) adds, for its duration:
//   bkv-transport-v1          CKO_PUBLIC_KEY,  destination token: RSA-3072
//                             CKO_PRIVATE_KEY  pair, private key unwrap-only
//   bkv-transport-trusted-v1  CKO_PUBLIC_KEY   source token: the destination's
//                                              public key, CKA_TRUSTED (SO)
inline constexpr absl::string_view kRecordSealKeyLabel = "bkv-record-seal-v1";
inline constexpr absl::string_view kOprfSeedLabel = "bkv-oprf-seed-v1";
inline constexpr absl::string_view kAkeWrapKeyLabel = "bkv-ake-wrap-v1";
inline constexpr absl::string_view kAkePrivateLabel = "bkv-ake-private-v1";
inline constexpr absl::string_view kAkePublicLabel = "bkv-ake-public-v1";
inline constexpr absl::string_view kTransportKeyLabel = "bkv-transport-v1";
inline constexpr absl::string_view kTrustedTransportLabel =
    "bkv-transport-trusted-v1";
inline constexpr absl::string_view kFreshHeadsLabel = "bkv-fresh-heads-v1";
inline constexpr absl::string_view kFreshMacLabel = "bkv-fresh-mac-v1";
inline constexpr absl::string_view kEndorseKeyLabel = "bkv-fresh-endorse-v1";
inline constexpr absl::string_view kEndorsedLabel = "bkv-fresh-endorsed-v1";
inline constexpr absl::string_view kEndorsedMacLabel =
    "bkv-fresh-endorsed-mac-v1";
inline constexpr absl::string_view kMembersLabel = "bkv-fresh-members-v1";
inline constexpr absl::string_view kMembersMacLabel =
    "bkv-fresh-members-mac-v1";

}  // namespace bkv::hsm

#endif  // BKV_HSM_KEY_LABELS_H_
