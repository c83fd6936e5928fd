#include "hsm/pin.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace bkv::hsm {
namespace {

constexpr size_t kMaxPinFile = 256;

bool IsTrailingSpace(uint8_t c) {
  return c == '\n' || c == '\r' || c == ' ' || c == '\t';
}

SecretBytes TrimTrailing(std::span<const uint8_t> bytes) {
  size_t n = bytes.size();
  while (n > 0 && IsTrailingSpace(bytes[n - 1])) --n;
  return SecretBytes::Copy(bytes.first(n));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

absl::StatusOr<SecretBytes> ReadPinFile(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    return absl::NotFoundError(absl::StrCat("cannot open PIN file ", path, ": ",
                                            std::strerror(errno)));
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("PIN file ", path, " is not a regular file"));
  }
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
    return absl::PermissionDeniedError(absl::StrCat(
        "PIN file ", path, " has group or other permissions (mode ", mode,
        "); run `chmod 600 ", path, "`"));
  }
  if (st.st_size <= 0 || static_cast<size_t>(st.st_size) > kMaxPinFile) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PIN file ", path, " must hold 1 to ", kMaxPinFile, " bytes"));
  }
  SecretBytes raw(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < raw.size()) {
    ssize_t n =
        read(fd.get(), raw.RevealMutable().data() + got, raw.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  SecretBytes pin = TrimTrailing(raw.Reveal().first(got));
  if (pin.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("PIN file ", path, " is empty"));
  }
  return pin;
}

absl::StatusOr<SecretBytes> ReadPinFromEnv(absl::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr || *value == '\0') {
    return absl::NotFoundError(absl::StrCat(name, " is not set"));
  }
  SecretBytes pin = TrimTrailing(std::span<const uint8_t>(
      reinterpret_cast<const uint8_t*>(value), std::strlen(value)));
  if (pin.empty()) return absl::NotFoundError(absl::StrCat(name, " is empty"));
  return pin;
}

void ScrubEnv(absl::string_view name) {
  const std::string var(name);
  if (char* value = std::getenv(var.c_str()); value != nullptr) {
    sodium_memzero(value, std::strlen(value));
  }
  unsetenv(var.c_str());
}

absl::Status WritePinFile(const std::string& path, const SecretBytes& pin) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
             0600));
  if (fd.get() < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create PIN file ", path, ": ", std::strerror(errno)));
  }
  // The umask can only remove bits, but be explicit.
  if (fchmod(fd.get(), 0600) != 0) {
    return absl::InternalError(absl::StrCat("chmod 600 ", path, " failed"));
  }
  SecretBytes content(pin.size() + 1);
  std::memcpy(content.RevealMutable().data(), pin.Reveal().data(), pin.size());
  content.RevealMutable()[pin.size()] = '\n';
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n =
        write(fd.get(), content.Reveal().data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InternalError(
          absl::StrCat("writing PIN file ", path, ": ", std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0) {
    return absl::InternalError(absl::StrCat("fsync ", path, " failed"));
  }
  return absl::OkStatus();
}

SecretBytes GeneratePin() {
  SecretBytes raw = SecretBytes::Random(16);
  SecretBytes hex(2 * raw.size() + 1);  // sodium_bin2hex writes a NUL
  sodium_bin2hex(reinterpret_cast<char*>(hex.RevealMutable().data()),
                 hex.size(), raw.Reveal().data(), raw.size());
  return SecretBytes::Copy(hex.Reveal().first(2 * raw.size()));
}

bool PinConfigured(const std::string& pin_file) {
  return !pin_file.empty() ||
         std::getenv(std::string(kPinEnvVar).c_str()) != nullptr;
}

}  // namespace bkv::hsm
