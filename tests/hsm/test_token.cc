#include "tests/hsm/test_token.h"

#include <stdlib.h>

#include <filesystem>
#include <system_error>

#include "crypto/status_macros.h"
#include "hsm/anchored_object.h"
#include "hsm/key_ceremony.h"
#include "hsm/pin.h"
#include "hsm/softhsm_dev.h"

namespace bkv::hsm::testing {

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl =
      std::string(base != nullptr ? base : "/tmp") + "/bkv-hsm-test-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  return tmpl;
}

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

absl::StatusOr<std::unique_ptr<TestToken>> TestToken::Create(bool with_keys) {
  auto token = std::make_unique<TestToken>();
  token->dir_ = MakeTempDir();
  BKV_ASSIGN_OR_RETURN(SoftHsmDevToken dev,
                       PrepareSoftHsmDir(token->dir_, kTestLabel));
  BKV_ASSIGN_OR_RETURN(token->pin_, ReadPinFile(dev.user_pin_path));
  BKV_ASSIGN_OR_RETURN(token->hsm_,
                       Pkcs11Hsm::Open(token->options(), token->pin_));
  if (with_keys) {
    BKV_RETURN_IF_ERROR(RunKeyCeremony(*token->hsm_, {}).status());
  }
  return token;
}

TestToken::~TestToken() {
  hsm_.reset();
  if (!dir_.empty()) RemoveTree(dir_);
}

TokenOptions TestToken::options() const {
  TokenOptions options;
  options.token_label = kTestLabel;
  return options;
}

absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> OpenThroughShim(
    TestToken& token, const std::string& shim) {
  token.CloseHsm();
  BKV_ASSIGN_OR_RETURN(const std::string real, LocateSoftHsmModule());
  if (setenv("BKV_TEST_REAL_MODULE", real.c_str(), 1) != 0) {
    return absl::InternalError("setenv BKV_TEST_REAL_MODULE failed");
  }
  TokenOptions shimmed = token.options();
  shimmed.module_path = shim;
  return Pkcs11Hsm::Open(shimmed, token.pin());
}

absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> OpenVaultToken(
    const std::string& softhsm_dir) {
  BKV_ASSIGN_OR_RETURN(SoftHsmDevToken dev,
                       PrepareSoftHsmDir(softhsm_dir, "bkv", "",
                                         /*allow_create=*/false));
  BKV_ASSIGN_OR_RETURN(SecretBytes pin, ReadPinFile(dev.user_pin_path));
  TokenOptions o;
  o.module_path = dev.module_path;
  return Pkcs11Hsm::Open(o, pin);
}

absl::StatusOr<size_t> DestroyObjects(Pkcs11Hsm& hsm,
                                      CK_OBJECT_CLASS object_class,
                                      absl::string_view label) {
  BKV_ASSIGN_OR_RETURN(auto session, hsm.AcquireSession());
  std::vector<std::pair<CK_ATTRIBUTE_TYPE, std::string>> names = {
      {CKA_LABEL, std::string(label)}};
  if (object_class == CKO_DATA) {  // an anchored value's slots too
    for (int i : {0, 1}) {
      names.emplace_back(CKA_APPLICATION, AnchoredObject::SlotName(label, i));
    }
  }
  size_t destroyed = 0;
  for (const auto& [type, name] : names) {
    BKV_ASSIGN_OR_RETURN(const std::vector<CK_OBJECT_HANDLE> found,
                         session.FindObjectsWith(object_class, type, name));
    for (CK_OBJECT_HANDLE h : found) {
      BKV_RETURN_IF_ERROR(session.DestroyObject(h));
    }
    destroyed += found.size();
  }
  return destroyed;
}

}  // namespace bkv::hsm::testing
