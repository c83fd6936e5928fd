#include "hsm/softhsm_dev.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"
#include "hsm/pin.h"
#include "hsm/pkcs11_hsm.h"

namespace bkv::hsm {
namespace {

namespace fs = std::filesystem;

absl::Status MakePrivateDir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  }
  struct stat st;
  if (stat(dir.c_str(), &st) == 0 && (st.st_mode & 0777) == 0700) {
    return absl::OkStatus();
  }
  if (chmod(dir.c_str(), 0700) != 0) {
    const int err = errno;
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot make ", dir.string(),
        " private (chmod 700): ", std::strerror(err),
        err == EROFS ? "; the directory is on a read-only file system: mount "
                       "it read-write"
                     : "; fix its owner or mode"));
  }
  return absl::OkStatus();
}

absl::Status WriteConfIfMissing(const fs::path& conf, const fs::path& tokens) {
  if (fs::exists(conf)) return absl::OkStatus();
  std::ofstream out(conf);
  out << "# SoftHSMv2 configuration written by `bkv-vault hsm init "
         "--softhsm-dir`.\n"
      << "# Development only: the token's keys are files under tokendir.\n"
      << "directories.tokendir = " << tokens.string() << "\n"
      << "objectstore.backend = file\n"
      << "log.level = ERROR\n"
      << "slots.removable = false\n";
  out.close();
  if (!out) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", conf.string()));
  }
  return absl::OkStatus();
}

absl::StatusOr<SecretBytes> ReadOrCreatePin(const std::string& path) {
  if (!fs::exists(path)) {
    BKV_RETURN_IF_ERROR(WritePinFile(path, GeneratePin()));
  }
  return ReadPinFile(path);
}

absl::Status MissingTokenError(absl::string_view what, absl::string_view path) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the development HSM token's ", what, " ", path,
      " is missing, but the data directory holds records that depend on the "
      "token's keys; refusing to create new ones (every password would read "
      "as wrong). Restore the token directory from its backup "
      "(docs/operations.md, \"Restoring the HSM token\"), then start again"));
}

}  // namespace

absl::StatusOr<SoftHsmDevToken> PrepareSoftHsmDir(const std::string& dir,
                                                  absl::string_view label,
                                                  std::string module_path,
                                                  bool allow_create) {
  std::error_code ec;
  fs::path root = fs::absolute(dir, ec);
  if (ec || dir.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad --softhsm-dir '", dir, "'"));
  }
  if (module_path.empty()) {
    BKV_ASSIGN_OR_RETURN(module_path, LocateSoftHsmModule());
  }
  SoftHsmDevToken t;
  t.dir = root.string();
  t.conf_path = (root / "softhsm2.conf").string();
  t.module_path = module_path;
  t.user_pin_path = (root / "user.pin").string();
  t.so_pin_path = (root / "so.pin").string();

  if (allow_create) {
    BKV_RETURN_IF_ERROR(MakePrivateDir(root));
    BKV_RETURN_IF_ERROR(MakePrivateDir(root / "tokens"));
    BKV_RETURN_IF_ERROR(WriteConfIfMissing(t.conf_path, root / "tokens"));
  } else {
    for (const fs::path& p : {root, root / "tokens", fs::path(t.conf_path),
                              fs::path(t.user_pin_path)}) {
      if (!fs::exists(p)) return MissingTokenError("file", p.string());
    }
  }
  if (setenv("SOFTHSM2_CONF", t.conf_path.c_str(), 1) != 0) {
    return absl::InternalError("setenv SOFTHSM2_CONF failed");
  }

  BKV_ASSIGN_OR_RETURN(bool exists,
                       Pkcs11Hsm::TokenExists(t.module_path, label));
  if (exists) {
    if (!fs::exists(t.user_pin_path)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "token '", label, "' exists under ", t.dir, " but ", t.user_pin_path,
          " is missing; restore it or remove ", t.dir, " to start over"));
    }
    return t;
  }
  if (!allow_create) {
    return MissingTokenError(absl::StrCat("token '", label, "' under"),
                             (root / "tokens").string());
  }
  BKV_ASSIGN_OR_RETURN(SecretBytes so_pin, ReadOrCreatePin(t.so_pin_path));
  BKV_ASSIGN_OR_RETURN(SecretBytes user_pin, ReadOrCreatePin(t.user_pin_path));
  BKV_RETURN_IF_ERROR(
      Pkcs11Hsm::InitToken(t.module_path, label, so_pin, user_pin));
  t.token_created = true;
  return t;
}

}  // namespace bkv::hsm
