#include "hsm/vault_key_specs.h"

namespace bkv::hsm {

SecretKeyTemplate::SecretKeyTemplate(const SecretKeySpec& spec, Origin origin)
    : type_(spec.key_type),
      size_(spec.size),
      ed_(spec.encrypt_decrypt ? CK_TRUE : CK_FALSE),
      sv_(spec.sign_verify ? CK_TRUE : CK_FALSE),
      wu_(spec.wrap_unwrap ? CK_TRUE : CK_FALSE) {
  const bool generate = origin == Origin::kGenerate;
  attrs_ = {
      {CKA_CLASS, &cls_, sizeof(cls_)},
      {CKA_KEY_TYPE, &type_, sizeof(type_)},
      {CKA_LABEL, const_cast<char*>(spec.label.data()), spec.label.size()},
      {CKA_TOKEN, &yes_, sizeof(yes_)},
      {CKA_PRIVATE, &yes_, sizeof(yes_)},
      {CKA_SENSITIVE, &yes_, sizeof(yes_)},
      {CKA_EXTRACTABLE, generate ? &yes_ : &no_, sizeof(CK_BBOOL)},
      {CKA_ENCRYPT, &ed_, sizeof(ed_)},
      {CKA_DECRYPT, &ed_, sizeof(ed_)},
      {CKA_SIGN, &sv_, sizeof(sv_)},
      {CKA_VERIFY, &sv_, sizeof(sv_)},
      {CKA_WRAP, &wu_, sizeof(wu_)},
      {CKA_UNWRAP, &wu_, sizeof(wu_)},
      {CKA_DERIVE, &no_, sizeof(no_)},
  };
  // The unwrapped value fixes the length; SoftHSM refuses it in an unwrap
  // template.
  if (generate) {
    attrs_.push_back({CKA_VALUE_LEN, &size_, sizeof(size_)});
    attrs_.push_back({CKA_WRAP_WITH_TRUSTED, &yes_, sizeof(yes_)});
  }
  // Last: SoftHSM refuses every attribute after it in an unwrap template.
  attrs_.push_back({CKA_MODIFIABLE, &no_, sizeof(no_)});
}

absl::StatusOr<CK_OBJECT_HANDLE> CreateDataObject(
    Pkcs11Hsm::Session& session, absl::string_view label, bool is_private,
    std::span<const uint8_t> value) {
  CK_OBJECT_CLASS cls = CKO_DATA;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  CK_BBOOL priv = is_private ? CK_TRUE : CK_FALSE;
  static constexpr absl::string_view kApplication = "bkv";
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
      {CKA_APPLICATION, const_cast<char*>(kApplication.data()),
       kApplication.size()},
      {CKA_TOKEN, &yes, sizeof(yes)},
      {CKA_PRIVATE, &priv, sizeof(priv)},
      {CKA_MODIFIABLE, &no, sizeof(no)},
      {CKA_VALUE, const_cast<uint8_t*>(value.data()), value.size()},
  };
  return session.CreateObject(tmpl);
}

}  // namespace bkv::hsm
