#include "client/cli/interrupt.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace bkv::cli {
namespace {

// The write end of the current watcher's pipe, for the handler.
std::atomic<int> g_signal_fd{-1};

extern "C" void OnSignal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  const int fd = g_signal_fd.load();
  if (fd >= 0) (void)::write(fd, &b, 1);
  errno = saved;
}

}  // namespace

InterruptWatcher::InterruptWatcher(CancelToken& token) {
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0 ||
      ::pipe2(stop_, O_CLOEXEC) != 0) {
    return;  // no watcher: a signal then ends the process as before
  }
  g_signal_fd.store(pipe_[1]);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  // SA_RESETHAND: a second Ctrl-C is not caught and ends the process.
  sa.sa_flags = SA_RESTART | SA_RESETHAND;
  ::sigaction(SIGINT, &sa, &old_int_);
  ::sigaction(SIGTERM, &sa, &old_term_);
  thread_ = std::thread([this, &token] { Watch(token); });
}

void InterruptWatcher::Watch(CancelToken& token) {
  pollfd fds[2] = {{pipe_[0], POLLIN, 0}, {stop_[0], POLLIN, 0}};
  // The stop byte ends the wait at once; `stopping_`, polled every 50 ms,
  // ends it should that write fail (fault injection makes write() fail).
  while (!stopping_.load()) {
    const int n = ::poll(fds, 2, 50);
    if (n < 0 && errno != EINTR) return;
    if (n <= 0) continue;
    if (fds[1].revents != 0) return;
    unsigned char b = 0;
    if (::read(pipe_[0], &b, 1) == 1 && signal_.load() == 0) {
      signal_.store(b);
      token.Cancel();
    }
  }
}

InterruptWatcher::~InterruptWatcher() {
  if (thread_.joinable()) {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    g_signal_fd.store(-1);
    stopping_.store(true);
    const unsigned char b = 0;
    (void)::write(stop_[1], &b, 1);
    thread_.join();
  }
  for (int fd : {pipe_[0], pipe_[1], stop_[0], stop_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

int InterruptWatcher::signal() const { return signal_.load(); }

}  // namespace bkv::cli
