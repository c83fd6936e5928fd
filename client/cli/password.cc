#include "client/cli/password.h"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>
#include <zxcvbn.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "crypto/status_macros.h"

namespace bkv::cli {
namespace {

constexpr size_t kMaxPassword = 1024;

// One line from `fd` without its line ending; at most kMaxPassword bytes.
absl::StatusOr<SecretBytes> ReadLine(int fd, const char* what) {
  SecretBytes buf(kMaxPassword);
  size_t n = 0;
  char c;
  while (n < buf.size()) {
    ssize_t r = ::read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read the ", what, ": ", std::strerror(errno)));
    }
    if (r == 0 || c == '\n') break;
    buf.RevealMutable()[n++] = static_cast<uint8_t>(c);
  }
  if (n > 0 && buf.Reveal()[n - 1] == '\r') --n;
  return SecretBytes::Copy(buf.Reveal().first(n));
}

// Restores the terminal's echo however the prompt ends.
class EchoOff {
 public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (tcgetattr(fd_, &saved_) != 0) return;
    termios quiet = saved_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    active_ = tcsetattr(fd_, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (active_) tcsetattr(fd_, TCSAFLUSH, &saved_);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

absl::StatusOr<SecretBytes> Prompt(int tty, const std::string& prompt,
                                   const char* what) {
  EchoOff quiet(tty);
  if (::write(tty, prompt.data(), prompt.size()) < 0) {
    return absl::InvalidArgumentError("cannot write to the terminal");
  }
  return ReadLine(tty, what);
}

// The controlling terminal when stdin is one, else -1.
int OpenTerminal() {
  if (!isatty(STDIN_FILENO)) return -1;
  return ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
}

absl::Status NoWayToAsk(const char* what) {
  return absl::InvalidArgumentError(absl::StrCat(
      "no ", what,
      ": type it at the prompt (run on a terminal) or pipe it with "
      "--password-stdin; passwords never go on the command line"));
}

}  // namespace

absl::StatusOr<SecretBytes> ReadPassword(bool from_stdin, const char* what) {
  if (from_stdin) {
    BKV_ASSIGN_OR_RETURN(SecretBytes pw, ReadLine(STDIN_FILENO, what));
    if (pw.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--password-stdin: no ", what, " on stdin"));
    }
    return pw;
  }
  const int tty = OpenTerminal();
  if (tty < 0) return NoWayToAsk(what);
  auto pw = Prompt(tty, absl::StrCat("Enter the ", what, ": "), what);
  ::close(tty);
  if (pw.ok() && pw->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("empty ", what));
  }
  return pw;
}

absl::Status ConfirmNewPassword(bool from_stdin, const SecretBytes& first,
                                std::string_view account) {
  BKV_RETURN_IF_ERROR(CheckPasswordStrength(first, account));
  if (from_stdin) return absl::OkStatus();
  const int tty = OpenTerminal();
  if (tty < 0) return NoWayToAsk("password confirmation");
  auto again = Prompt(tty, "Repeat it to set it: ", "password");
  ::close(tty);
  BKV_RETURN_IF_ERROR(again.status());
  if (!(*again == first)) {
    return absl::InvalidArgumentError(
        "the two passwords differ: nothing was set; run the command again");
  }
  return absl::OkStatus();
}

absl::StatusOr<SecretBytes> ReadNewPassword(bool from_stdin, const char* what,
                                            std::string_view account) {
  BKV_ASSIGN_OR_RETURN(SecretBytes pw, ReadPassword(from_stdin, what));
  BKV_RETURN_IF_ERROR(ConfirmNewPassword(from_stdin, pw, account));
  return pw;
}

absl::Status CheckPasswordStrength(const SecretBytes& password,
                                   std::string_view account) {
  // zxcvbn wants a C string; the copy is wiped with the SecretBytes.
  SecretBytes text(password.size() + 1);
  std::memcpy(text.RevealMutable().data(), password.Reveal().data(),
              password.size());
  const std::string user(account);
  const char* known[] = {user.c_str(), "bkv", "backup", nullptr};
  const double bits = ZxcvbnMatch(
      reinterpret_cast<const char*>(text.Reveal().data()), known, nullptr);
  if (password.size() >= kMinPasswordLength && bits >= kMinPasswordBits) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "this password is too easy to guess (about ",
      static_cast<int>(std::floor(bits)), " bits by zxcvbn; at least ",
      kMinPasswordBits, " bits and ", kMinPasswordLength,
      " characters are needed): use a few unrelated words or a longer mix "
      "of characters; nothing was set"));
}

}  // namespace bkv::cli
