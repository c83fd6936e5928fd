#include "hsm/pkcs11_hsm.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crypto/status_macros.h"
#include "hsm/pkcs11_status.h"

namespace bkv::hsm {

// A loaded module. The registry keys modules by dlopen handle, so two paths
// naming the same library (symlinks) share one C_Initialize.
class Module {
 public:
  static absl::StatusOr<std::shared_ptr<Module>> Load(std::string path);
  ~Module();

  CK_FUNCTION_LIST* fn() const { return fn_; }
  const std::string& path() const { return path_; }

 private:
  Module(std::string path, void* dl, CK_FUNCTION_LIST* fn, bool owns_init)
      : path_(std::move(path)), dl_(dl), fn_(fn), owns_init_(owns_init) {}

  const std::string path_;
  void* const dl_;
  CK_FUNCTION_LIST* const fn_;
  const bool owns_init_;
};

namespace {

constexpr size_t kMaxSlots = 256;
constexpr size_t kMaxFoundObjects = 16;
constexpr size_t kMaxAttributeSize = 1 << 16;

absl::Mutex g_modules_mu(absl::kConstInit);
std::map<void*, std::weak_ptr<Module>>& Modules()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_modules_mu) {
  static auto* modules = new std::map<void*, std::weak_ptr<Module>>();
  return *modules;
}

std::string Prefixed(absl::string_view prefix, const absl::Status& status) {
  return absl::StrCat(prefix, ": ", status.message());
}

// Same code and payload, more context in front of the message.
absl::Status WithContext(const absl::Status& status, absl::string_view prefix) {
  if (status.ok()) return status;
  absl::Status out(status.code(), Prefixed(prefix, status));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

CK_UTF8CHAR_PTR PinPtr(const SecretBytes& pin) {
  // PKCS#11 takes a non-const pointer but never writes through it.
  return const_cast<CK_UTF8CHAR_PTR>(pin.Reveal().data());
}

std::string TrimLabel(const unsigned char (&label)[32]) {
  std::string s(reinterpret_cast<const char*>(label), sizeof(label));
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

struct SlotToken {
  CK_SLOT_ID slot;
  CK_TOKEN_INFO info;
};

absl::StatusOr<std::vector<SlotToken>> ListTokens(CK_FUNCTION_LIST* fn) {
  CK_ULONG count = 0;
  BKV_RETURN_IF_ERROR(
      CheckRv(fn->C_GetSlotList(CK_TRUE, nullptr, &count), "C_GetSlotList"));
  std::vector<CK_SLOT_ID> slots(std::min<CK_ULONG>(count, kMaxSlots));
  count = slots.size();
  BKV_RETURN_IF_ERROR(CheckRv(fn->C_GetSlotList(CK_TRUE, slots.data(), &count),
                              "C_GetSlotList"));
  slots.resize(std::min<CK_ULONG>(count, slots.size()));
  std::vector<SlotToken> tokens;
  for (CK_SLOT_ID slot : slots) {
    SlotToken t{slot, {}};
    CK_RV rv = fn->C_GetTokenInfo(slot, &t.info);
    // A token pulled out between the two calls is simply not there.
    if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_TOKEN_NOT_RECOGNIZED) continue;
    BKV_RETURN_IF_ERROR(CheckRv(rv, "C_GetTokenInfo"));
    tokens.push_back(t);
  }
  return tokens;
}

absl::StatusOr<CK_SLOT_ID> FindTokenSlot(const Module& module,
                                         absl::string_view label) {
  BKV_ASSIGN_OR_RETURN(std::vector<SlotToken> tokens, ListTokens(module.fn()));
  std::vector<CK_SLOT_ID> matches;
  std::vector<std::string> others;
  for (const SlotToken& t : tokens) {
    if (!(t.info.flags & CKF_TOKEN_INITIALIZED)) continue;
    std::string l = TrimLabel(t.info.label);
    if (l == label) {
      matches.push_back(t.slot);
    } else {
      others.push_back(absl::StrCat("'", l, "'"));
    }
  }
  if (matches.size() == 1) return matches[0];
  if (matches.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(matches.size(), " tokens labelled '", label, "' in ",
                     module.path(), "; labels must be unique"));
  }
  return absl::NotFoundError(absl::StrCat(
      "token '", label, "' not found in module ", module.path(),
      others.empty() ? " (no initialised tokens)"
                     : absl::StrCat(" (tokens present: ",
                                    absl::StrJoin(others, ", "), ")"),
      "; run `bkv-vault hsm init`"));
}

struct NeededMechanism {
  CK_MECHANISM_TYPE type;
  absl::string_view name;
  absl::string_view use;
};
constexpr NeededMechanism kNeededMechanisms[] = {
    {CKM_AES_GCM, "CKM_AES_GCM", "record sealing"},
    {CKM_SHA512_HMAC, "CKM_SHA512_HMAC", "the OPRF seed"},
    {CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD", "the wrapped AKE key"},
    {CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN", "the key ceremony"},
    {CKM_GENERIC_SECRET_KEY_GEN, "CKM_GENERIC_SECRET_KEY_GEN",
     "the key ceremony"},
};

absl::Status CheckMechanisms(const Module& module, CK_SLOT_ID slot,
                             absl::string_view describe) {
  std::vector<std::string> missing;
  for (const NeededMechanism& m : kNeededMechanisms) {
    CK_MECHANISM_INFO info;
    CK_RV rv = module.fn()->C_GetMechanismInfo(slot, m.type, &info);
    if (rv == CKR_MECHANISM_INVALID) {
      missing.push_back(absl::StrCat(m.name, " (", m.use, ")"));
      continue;
    }
    BKV_RETURN_IF_ERROR(CheckRv(rv, "C_GetMechanismInfo"));
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::UnimplementedError(absl::StrCat(
      describe,
      ": mechanism unsupported by the module: ", absl::StrJoin(missing, ", ")));
}

// PKCS#11 takes non-const input pointers and some modules (SoftHSM) reject a
// null one even for zero bytes, so empty inputs point at a dummy byte.
CK_BYTE_PTR In(std::span<const uint8_t> bytes) {
  static CK_BYTE empty = 0;
  return bytes.empty() ? &empty : const_cast<CK_BYTE_PTR>(bytes.data());
}

void PadLabel(absl::string_view label, CK_UTF8CHAR (&out)[32]) {
  std::fill(std::begin(out), std::end(out), ' ');
  std::copy_n(label.begin(), std::min(label.size(), sizeof(out)), out);
}

}  // namespace

absl::StatusOr<std::string> LocateSoftHsmModule() {
  static constexpr std::array<const char*, 4> kCandidates = {
      "/usr/lib/softhsm/libsofthsm2.so",
      "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
      "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
      "/usr/lib64/pkcs11/libsofthsm2.so",
  };
  for (const char* path : kCandidates) {
    if (access(path, R_OK) == 0) return std::string(path);
  }
  return absl::NotFoundError(
      absl::StrCat("SoftHSMv2 module not found (looked in ",
                   absl::StrJoin(kCandidates, ", "),
                   "); install softhsm2 or pass --module PATH"));
}

absl::StatusOr<std::shared_ptr<Module>> Module::Load(std::string path) {
  if (path.empty()) {
    BKV_ASSIGN_OR_RETURN(path, LocateSoftHsmModule());
  }
  // RTLD_NOW: a module missing symbols fails here, not mid-request.
  void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (dl == nullptr) {
    const char* why = dlerror();
    return absl::NotFoundError(
        absl::StrCat("PKCS#11 module ", path, " could not be loaded (",
                     why != nullptr ? why : "unknown dlopen error",
                     "); check --module (SoftHSMv2: install softhsm2)"));
  }
  auto get_list =
      reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl, "C_GetFunctionList"));
  if (get_list == nullptr) {
    dlclose(dl);
    return absl::FailedPreconditionError(
        absl::StrCat(path,
                     " is not a PKCS#11 module (no C_GetFunctionList); check "
                     "--module"));
  }

  absl::MutexLock lock(&g_modules_mu);
  auto& modules = Modules();
  if (auto it = modules.find(dl); it != modules.end()) {
    if (std::shared_ptr<Module> live = it->second.lock()) {
      dlclose(dl);  // drop the extra reference this dlopen took
      return live;
    }
  }
  CK_FUNCTION_LIST* fn = nullptr;
  absl::Status s = CheckRv(get_list(&fn), "C_GetFunctionList");
  if (s.ok() && fn == nullptr) {
    s = absl::FailedPreconditionError("C_GetFunctionList returned no list");
  }
  if (!s.ok()) return WithContext(s, path);
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = fn->C_Initialize(&args);
  // Someone else in the process initialised it: use it, leave finalising to
  // them.
  bool owns_init = rv != CKR_CRYPTOKI_ALREADY_INITIALIZED;
  if (owns_init) {
    BKV_RETURN_IF_ERROR(WithContext(CheckRv(rv, "C_Initialize"), path));
  }
  auto module =
      std::shared_ptr<Module>(new Module(std::move(path), dl, fn, owns_init));
  modules[dl] = module;
  return module;
}

Module::~Module() {
  absl::MutexLock lock(&g_modules_mu);
  auto& modules = Modules();
  auto it = modules.find(dl_);
  // A Load that ran while this destructor waited for the lock found the
  // module still initialised and now relies on it: leave it be.
  if (it != modules.end() && !it->second.expired()) return;
  if (owns_init_) fn_->C_Finalize(nullptr);
  if (it != modules.end()) modules.erase(it);
  // The library stays mapped: modules may leave atexit handlers and threads
  // behind (OpenSSL inside SoftHSM does), and unmapping under them crashes.
}

Pkcs11Hsm::Pkcs11Hsm(std::shared_ptr<Module> module, std::string label,
                     CK_SLOT_ID slot, TokenOptions options)
    : module_(std::move(module)),
      label_(std::move(label)),
      slot_(slot),
      options_(std::move(options)) {}

Pkcs11Hsm::~Pkcs11Hsm() {
  absl::MutexLock lock(&mu_);
  for (CK_SESSION_HANDLE h : idle_) module_->fn()->C_CloseSession(h);
  idle_.clear();
  if (login_session_ != CK_INVALID_HANDLE) {
    module_->fn()->C_CloseSession(login_session_);
  }
}

const std::string& Pkcs11Hsm::module_path() const { return module_->path(); }

std::string Pkcs11Hsm::Describe() const {
  return absl::StrCat("token '", label_, "' in ", module_->path());
}

absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> Pkcs11Hsm::Open(
    const TokenOptions& options, const SecretBytes& pin) {
  return OpenAs(options, pin, CKU_USER);
}

absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> Pkcs11Hsm::OpenAsSecurityOfficer(
    const TokenOptions& options, const SecretBytes& so_pin) {
  return OpenAs(options, so_pin, CKU_SO);
}

absl::StatusOr<std::shared_ptr<Pkcs11Hsm>> Pkcs11Hsm::OpenAs(
    const TokenOptions& options, const SecretBytes& pin,
    CK_USER_TYPE user_type) {
  if (options.max_sessions == 0) {
    return absl::InvalidArgumentError("max_sessions must be at least 1");
  }
  BKV_ASSIGN_OR_RETURN(std::shared_ptr<Module> module,
                       Module::Load(options.module_path));
  BKV_ASSIGN_OR_RETURN(CK_SLOT_ID slot,
                       FindTokenSlot(*module, options.token_label));
  std::shared_ptr<Pkcs11Hsm> hsm(
      new Pkcs11Hsm(module, options.token_label, slot, options));
  const std::string describe = hsm->Describe();
  BKV_RETURN_IF_ERROR(CheckMechanisms(*module, slot, describe));

  CK_FUNCTION_LIST* fn = module->fn();
  BKV_RETURN_IF_ERROR(WithContext(
      CheckRv(fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                nullptr, nullptr, &hsm->login_session_),
              "C_OpenSession"),
      describe));
  CK_RV rv =
      fn->C_Login(hsm->login_session_, user_type, PinPtr(pin), pin.size());
  // Another Pkcs11Hsm on the same token in this process already logged in.
  if (rv != CKR_USER_ALREADY_LOGGED_IN || user_type != CKU_USER) {
    BKV_RETURN_IF_ERROR(WithContext(
        CheckRv(rv,
                user_type == CKU_SO ? "C_Login (security officer)" : "C_Login"),
        describe));
  }
  return hsm;
}

absl::Status Pkcs11Hsm::InitToken(absl::string_view module_path,
                                  absl::string_view label,
                                  const SecretBytes& so_pin,
                                  const SecretBytes& user_pin) {
  if (label.empty() || label.size() > 32) {
    return absl::InvalidArgumentError("token label must be 1 to 32 bytes");
  }
  BKV_ASSIGN_OR_RETURN(std::shared_ptr<Module> module,
                       Module::Load(std::string(module_path)));
  CK_FUNCTION_LIST* fn = module->fn();
  BKV_ASSIGN_OR_RETURN(std::vector<SlotToken> tokens, ListTokens(fn));
  std::optional<CK_SLOT_ID> free_slot;
  for (const SlotToken& t : tokens) {
    if (t.info.flags & CKF_TOKEN_INITIALIZED) {
      if (TrimLabel(t.info.label) == label) {
        return absl::AlreadyExistsError(absl::StrCat(
            "token '", label, "' already exists in ", module->path()));
      }
    } else if (!free_slot.has_value()) {
      free_slot = t.slot;
    }
  }
  if (!free_slot.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no slot with an uninitialised token in ", module->path()));
  }
  CK_UTF8CHAR padded[32];
  PadLabel(label, padded);
  BKV_RETURN_IF_ERROR(CheckRv(
      fn->C_InitToken(*free_slot, PinPtr(so_pin), so_pin.size(), padded),
      "C_InitToken"));
  // SoftHSM moves an initialised token to a new slot id: look it up again.
  BKV_ASSIGN_OR_RETURN(CK_SLOT_ID slot, FindTokenSlot(*module, label));
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  BKV_RETURN_IF_ERROR(
      CheckRv(fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                nullptr, nullptr, &session),
              "C_OpenSession"));
  absl::Status s = CheckRv(
      fn->C_Login(session, CKU_SO, PinPtr(so_pin), so_pin.size()), "C_Login");
  if (s.ok()) {
    s = CheckRv(fn->C_InitPIN(session, PinPtr(user_pin), user_pin.size()),
                "C_InitPIN");
    fn->C_Logout(session);
  }
  fn->C_CloseSession(session);
  return s;
}

absl::Status Pkcs11Hsm::VerifySoPin(absl::string_view module_path,
                                    absl::string_view label,
                                    const SecretBytes& so_pin) {
  BKV_ASSIGN_OR_RETURN(std::shared_ptr<Module> module,
                       Module::Load(std::string(module_path)));
  BKV_ASSIGN_OR_RETURN(CK_SLOT_ID slot, FindTokenSlot(*module, label));
  CK_FUNCTION_LIST* fn = module->fn();
  CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
  BKV_RETURN_IF_ERROR(
      CheckRv(fn->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                nullptr, nullptr, &session),
              "C_OpenSession"));
  const CK_RV rv = fn->C_Login(session, CKU_SO, PinPtr(so_pin), so_pin.size());
  if (rv == CKR_OK) fn->C_Logout(session);
  fn->C_CloseSession(session);
  if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE) {
    return absl::PermissionDeniedError(
        absl::StrCat("the security officer PIN of token '", label, "' in ",
                     module->path(), " is wrong"));
  }
  return CheckRv(rv, "C_Login(CKU_SO)");
}

absl::StatusOr<bool> Pkcs11Hsm::TokenExists(absl::string_view module_path,
                                            absl::string_view label) {
  BKV_ASSIGN_OR_RETURN(std::shared_ptr<Module> module,
                       Module::Load(std::string(module_path)));
  absl::StatusOr<CK_SLOT_ID> slot = FindTokenSlot(*module, label);
  if (absl::IsNotFound(slot.status())) return false;
  if (!slot.ok()) return slot.status();
  return true;
}

absl::StatusOr<Pkcs11Hsm::Session> Pkcs11Hsm::AcquireSession() {
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < options_.max_sessions;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&available),
                              options_.session_wait)) {
      return absl::DeadlineExceededError(
          absl::StrCat(Describe(), ": all ", options_.max_sessions,
                       " sessions stayed busy for ",
                       absl::FormatDuration(options_.session_wait)));
    }
    if (!idle_.empty()) {
      CK_SESSION_HANDLE h = idle_.back();
      idle_.pop_back();
      return Session(this, h);
    }
    ++open_;  // reserve the slot; open outside the lock
  }
  CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
  absl::Status s = CheckRv(
      module_->fn()->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                   nullptr, nullptr, &h),
      "C_OpenSession");
  if (!s.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return WithContext(s, Describe());
  }
  return Session(this, h);
}

void Pkcs11Hsm::Release(CK_SESSION_HANDLE handle, bool broken) {
  if (broken) module_->fn()->C_CloseSession(handle);
  absl::MutexLock lock(&mu_);
  if (broken) {
    --open_;
  } else {
    idle_.push_back(handle);
  }
}

// ---- Session ----

Pkcs11Hsm::Session::Session(Session&& other) noexcept
    : hsm_(std::exchange(other.hsm_, nullptr)),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)),
      broken_(other.broken_) {}

Pkcs11Hsm::Session::~Session() {
  if (hsm_ != nullptr) hsm_->Release(handle_, broken_);
}

absl::Status Pkcs11Hsm::Session::Check(CK_RV rv, absl::string_view function) {
  if (rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
      rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT) {
    broken_ = true;
  }
  return CheckRv(rv, function);
}

// CKM_AES_GCM parameters with a 128-bit tag; the spans must outlive the call.
static CK_GCM_PARAMS GcmParams(std::span<const uint8_t> iv,
                               std::span<const uint8_t> aad) {
  CK_GCM_PARAMS params{};
  params.pIv = const_cast<CK_BYTE_PTR>(iv.data());
  params.ulIvLen = iv.size();
  params.ulIvBits = iv.size() * 8;
  params.pAAD = In(aad);
  params.ulAADLen = aad.size();
  params.ulTagBits = 128;
  return params;
}

absl::StatusOr<std::vector<uint8_t>> Pkcs11Hsm::Session::EncryptAesGcm(
    CK_OBJECT_HANDLE key, std::span<const uint8_t> iv,
    std::span<const uint8_t> aad, std::span<const uint8_t> plaintext) {
  CK_GCM_PARAMS params = GcmParams(iv, aad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
  CK_FUNCTION_LIST* fn = hsm_->module_->fn();
  BKV_RETURN_IF_ERROR(
      Check(fn->C_EncryptInit(handle_, &mech, key), "C_EncryptInit"));
  std::vector<uint8_t> out(plaintext.size() + 16);
  CK_ULONG out_len = out.size();
  BKV_RETURN_IF_ERROR(
      Check(fn->C_Encrypt(handle_, In(plaintext), plaintext.size(), out.data(),
                          &out_len),
            "C_Encrypt"));
  if (out_len != out.size()) {
    return absl::InternalError(absl::StrCat("C_Encrypt: CKM_AES_GCM returned ",
                                            out_len, " bytes, expected ",
                                            out.size()));
  }
  return out;
}

absl::StatusOr<std::vector<uint8_t>> Pkcs11Hsm::Session::DecryptAesGcm(
    CK_OBJECT_HANDLE key, std::span<const uint8_t> iv,
    std::span<const uint8_t> aad, std::span<const uint8_t> ciphertext) {
  if (ciphertext.size() < 16) {
    return absl::DataLossError(
        "authentication failed: ciphertext shorter than the GCM tag");
  }
  CK_GCM_PARAMS params = GcmParams(iv, aad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
  CK_FUNCTION_LIST* fn = hsm_->module_->fn();
  BKV_RETURN_IF_ERROR(
      Check(fn->C_DecryptInit(handle_, &mech, key), "C_DecryptInit"));
  // Modules differ on whether they count the tag in the size bound; the
  // ciphertext length is always enough.
  std::vector<uint8_t> out(ciphertext.size());
  CK_ULONG out_len = out.size();
  BKV_RETURN_IF_ERROR(
      Check(fn->C_Decrypt(handle_, const_cast<CK_BYTE_PTR>(ciphertext.data()),
                          ciphertext.size(), out.data(), &out_len),
            "C_Decrypt"));
  if (out_len != ciphertext.size() - 16) {
    return absl::InternalError(absl::StrCat("C_Decrypt: CKM_AES_GCM returned ",
                                            out_len, " bytes, expected ",
                                            ciphertext.size() - 16));
  }
  out.resize(out_len);
  return out;
}

absl::StatusOr<SecretBytes> Pkcs11Hsm::Session::HmacSha512(
    CK_OBJECT_HANDLE key, std::span<const uint8_t> message) {
  CK_MECHANISM mech{CKM_SHA512_HMAC, nullptr, 0};
  CK_FUNCTION_LIST* fn = hsm_->module_->fn();
  BKV_RETURN_IF_ERROR(Check(fn->C_SignInit(handle_, &mech, key), "C_SignInit"));
  SecretBytes mac(64);
  CK_ULONG mac_len = mac.size();
  BKV_RETURN_IF_ERROR(Check(fn->C_Sign(handle_, In(message), message.size(),
                                       mac.RevealMutable().data(), &mac_len),
                            "C_Sign"));
  if (mac_len != 64) {
    return absl::InternalError(absl::StrCat("C_Sign: CKM_SHA512_HMAC returned ",
                                            mac_len, " bytes, expected 64"));
  }
  return mac;
}

absl::StatusOr<std::vector<uint8_t>> Pkcs11Hsm::Session::SignEddsa(
    CK_OBJECT_HANDLE key, std::span<const uint8_t> message) {
  CK_MECHANISM mech{CKM_EDDSA, nullptr, 0};
  CK_FUNCTION_LIST* fn = hsm_->module_->fn();
  BKV_RETURN_IF_ERROR(Check(fn->C_SignInit(handle_, &mech, key), "C_SignInit"));
  std::vector<uint8_t> sig(64);
  CK_ULONG sig_len = sig.size();
  BKV_RETURN_IF_ERROR(Check(
      fn->C_Sign(handle_, In(message), message.size(), sig.data(), &sig_len),
      "C_Sign"));
  if (sig_len != 64) {
    return absl::InternalError(absl::StrCat("C_Sign: CKM_EDDSA returned ",
                                            sig_len, " bytes, expected 64"));
  }
  return sig;
}

absl::Status Pkcs11Hsm::Session::GenerateRandom(std::span<uint8_t> out) {
  return Check(
      hsm_->module_->fn()->C_GenerateRandom(handle_, out.data(), out.size()),
      "C_GenerateRandom");
}

namespace {

// SoftHSMv2 2.6 accepts OAEP only with SHA-1 and MGF1-SHA-1.
CK_RSA_PKCS_OAEP_PARAMS OaepParams() {
  return {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, nullptr, 0};
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> Pkcs11Hsm::Session::WrapKey(
    CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key) {
  CK_MECHANISM mech{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  return Wrap(mech, wrapping_key, key);
}

absl::StatusOr<std::vector<uint8_t>> Pkcs11Hsm::Session::WrapKeyRsaOaep(
    CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key) {
  CK_RSA_PKCS_OAEP_PARAMS params = OaepParams();
  CK_MECHANISM mech{CKM_RSA_PKCS_OAEP, &params, sizeof(params)};
  return Wrap(mech, wrapping_key, key);
}

absl::StatusOr<std::vector<uint8_t>> Pkcs11Hsm::Session::Wrap(
    CK_MECHANISM& mech, CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key) {
  CK_FUNCTION_LIST* fn = hsm_->module_->fn();
  CK_ULONG len = 0;
  BKV_RETURN_IF_ERROR(
      Check(fn->C_WrapKey(handle_, &mech, wrapping_key, key, nullptr, &len),
            "C_WrapKey"));
  if (len > kMaxAttributeSize) {
    return absl::InternalError("C_WrapKey: implausible wrapped size");
  }
  std::vector<uint8_t> wrapped(len);
  BKV_RETURN_IF_ERROR(Check(
      fn->C_WrapKey(handle_, &mech, wrapping_key, key, wrapped.data(), &len),
      "C_WrapKey"));
  wrapped.resize(std::min<size_t>(len, wrapped.size()));
  return wrapped;
}

absl::StatusOr<CK_OBJECT_HANDLE> Pkcs11Hsm::Session::UnwrapKey(
    CK_OBJECT_HANDLE unwrapping_key, std::span<const uint8_t> wrapped,
    std::span<CK_ATTRIBUTE> key_template) {
  CK_MECHANISM mech{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  return Unwrap(mech, unwrapping_key, wrapped, key_template);
}

absl::StatusOr<CK_OBJECT_HANDLE> Pkcs11Hsm::Session::UnwrapKeyRsaOaep(
    CK_OBJECT_HANDLE unwrapping_key, std::span<const uint8_t> wrapped,
    std::span<CK_ATTRIBUTE> key_template) {
  CK_RSA_PKCS_OAEP_PARAMS params = OaepParams();
  CK_MECHANISM mech{CKM_RSA_PKCS_OAEP, &params, sizeof(params)};
  return Unwrap(mech, unwrapping_key, wrapped, key_template);
}

absl::StatusOr<CK_OBJECT_HANDLE> Pkcs11Hsm::Session::Unwrap(
    CK_MECHANISM& mech, CK_OBJECT_HANDLE unwrapping_key,
    std::span<const uint8_t> wrapped, std::span<CK_ATTRIBUTE> key_template) {
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  BKV_RETURN_IF_ERROR(Check(
      hsm_->module_->fn()->C_UnwrapKey(handle_, &mech, unwrapping_key,
                                       const_cast<CK_BYTE_PTR>(wrapped.data()),
                                       wrapped.size(), key_template.data(),
                                       key_template.size(), &key),
      "C_UnwrapKey"));
  return key;
}

absl::StatusOr<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE>>
Pkcs11Hsm::Session::GenerateKeyPair(CK_MECHANISM_TYPE mechanism,
                                    std::span<CK_ATTRIBUTE> public_template,
                                    std::span<CK_ATTRIBUTE> private_template) {
  CK_MECHANISM mech{mechanism, nullptr, 0};
  CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
  BKV_RETURN_IF_ERROR(
      Check(hsm_->module_->fn()->C_GenerateKeyPair(
                handle_, &mech, public_template.data(), public_template.size(),
                private_template.data(), private_template.size(), &pub, &priv),
            "C_GenerateKeyPair"));
  return std::pair{pub, priv};
}

absl::StatusOr<CK_OBJECT_HANDLE> Pkcs11Hsm::Session::GenerateKey(
    CK_MECHANISM_TYPE mechanism, std::span<CK_ATTRIBUTE> key_template) {
  CK_MECHANISM mech{mechanism, nullptr, 0};
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  BKV_RETURN_IF_ERROR(
      Check(hsm_->module_->fn()->C_GenerateKey(
                handle_, &mech, key_template.data(), key_template.size(), &key),
            "C_GenerateKey"));
  return key;
}

absl::StatusOr<CK_OBJECT_HANDLE> Pkcs11Hsm::Session::CreateObject(
    std::span<CK_ATTRIBUTE> object_template) {
  CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
  BKV_RETURN_IF_ERROR(Check(
      hsm_->module_->fn()->C_CreateObject(handle_, object_template.data(),
                                          object_template.size(), &object),
      "C_CreateObject"));
  return object;
}

absl::StatusOr<CK_OBJECT_HANDLE> Pkcs11Hsm::Session::CopyObject(
    CK_OBJECT_HANDLE object, std::span<CK_ATTRIBUTE> changes) {
  CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
  BKV_RETURN_IF_ERROR(
      Check(hsm_->module_->fn()->C_CopyObject(handle_, object, changes.data(),
                                              changes.size(), &copy),
            "C_CopyObject"));
  return copy;
}

absl::Status Pkcs11Hsm::Session::SetAttribute(CK_OBJECT_HANDLE object,
                                              CK_ATTRIBUTE_TYPE type,
                                              std::span<const uint8_t> value) {
  CK_ATTRIBUTE attr{type, const_cast<uint8_t*>(value.data()), value.size()};
  return Check(
      hsm_->module_->fn()->C_SetAttributeValue(handle_, object, &attr, 1),
      "C_SetAttributeValue");
}

absl::Status Pkcs11Hsm::Session::DestroyObject(CK_OBJECT_HANDLE object) {
  return Check(hsm_->module_->fn()->C_DestroyObject(handle_, object),
               "C_DestroyObject");
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> Pkcs11Hsm::Session::FindObjects(
    CK_OBJECT_CLASS object_class, absl::string_view label) {
  return FindObjectsWith(object_class, CKA_LABEL, label);
}

absl::StatusOr<std::vector<CK_OBJECT_HANDLE>>
Pkcs11Hsm::Session::FindObjectsWith(CK_OBJECT_CLASS object_class,
                                    CK_ATTRIBUTE_TYPE type,
                                    absl::string_view value) {
  CK_ATTRIBUTE query[] = {
      {CKA_CLASS, &object_class, sizeof(object_class)},
      {type, const_cast<char*>(value.data()), value.size()},
  };
  CK_FUNCTION_LIST* fn = hsm_->module_->fn();
  BKV_RETURN_IF_ERROR(
      Check(fn->C_FindObjectsInit(handle_, query, 2), "C_FindObjectsInit"));
  std::vector<CK_OBJECT_HANDLE> found(kMaxFoundObjects);
  CK_ULONG count = 0;
  absl::Status s =
      Check(fn->C_FindObjects(handle_, found.data(), found.size(), &count),
            "C_FindObjects");
  // Always end the search, or the session is stuck in find mode.
  absl::Status final_status =
      Check(fn->C_FindObjectsFinal(handle_), "C_FindObjectsFinal");
  BKV_RETURN_IF_ERROR(s);
  BKV_RETURN_IF_ERROR(final_status);
  found.resize(std::min<CK_ULONG>(count, found.size()));
  return found;
}

absl::StatusOr<CK_OBJECT_HANDLE> Pkcs11Hsm::Session::FindObject(
    CK_OBJECT_CLASS object_class, absl::string_view label) {
  BKV_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found,
                       FindObjects(object_class, label));
  if (found.empty()) {
    return absl::NotFoundError(
        absl::StrCat(hsm_->Describe(), ": key label '", label,
                     "' missing; run `bkv-vault hsm init`"));
  }
  if (found.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(hsm_->Describe(), ": ", found.size(),
                     " objects labelled '", label, "'; labels must be unique"));
  }
  return found[0];
}

absl::StatusOr<std::vector<uint8_t>> Pkcs11Hsm::Session::GetAttribute(
    CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE attr{type, nullptr, 0};
  CK_FUNCTION_LIST* fn = hsm_->module_->fn();
  BKV_RETURN_IF_ERROR(Check(fn->C_GetAttributeValue(handle_, object, &attr, 1),
                            "C_GetAttributeValue"));
  if (attr.ulValueLen > kMaxAttributeSize) {
    return absl::InternalError("C_GetAttributeValue: implausible size");
  }
  std::vector<uint8_t> value(attr.ulValueLen);
  attr.pValue = value.data();
  BKV_RETURN_IF_ERROR(Check(fn->C_GetAttributeValue(handle_, object, &attr, 1),
                            "C_GetAttributeValue"));
  value.resize(std::min<size_t>(attr.ulValueLen, value.size()));
  return value;
}

absl::StatusOr<SecretBytes> Pkcs11Hsm::Session::GetSecretAttribute(
    CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE attr{type, nullptr, 0};
  CK_FUNCTION_LIST* fn = hsm_->module_->fn();
  BKV_RETURN_IF_ERROR(Check(fn->C_GetAttributeValue(handle_, object, &attr, 1),
                            "C_GetAttributeValue"));
  if (attr.ulValueLen > kMaxAttributeSize) {
    return absl::InternalError("C_GetAttributeValue: implausible size");
  }
  SecretBytes value = SecretBytes::Locked(attr.ulValueLen);
  attr.pValue = value.RevealMutable().data();
  BKV_RETURN_IF_ERROR(Check(fn->C_GetAttributeValue(handle_, object, &attr, 1),
                            "C_GetAttributeValue"));
  if (attr.ulValueLen != value.size()) {
    return absl::InternalError("C_GetAttributeValue: size changed");
  }
  return value;
}

absl::StatusOr<bool> Pkcs11Hsm::Session::GetBoolAttribute(
    CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  CK_BBOOL value = CK_FALSE;
  CK_ATTRIBUTE attr{type, &value, sizeof(value)};
  BKV_RETURN_IF_ERROR(
      Check(hsm_->module_->fn()->C_GetAttributeValue(handle_, object, &attr, 1),
            "C_GetAttributeValue"));
  return value == CK_TRUE;
}

}  // namespace bkv::hsm
