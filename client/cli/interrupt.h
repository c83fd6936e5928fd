#ifndef BKV_CLIENT_CLI_INTERRUPT_H_
#define BKV_CLIENT_CLI_INTERRUPT_H_

// SIGINT and SIGTERM during a long command become a cancellation: the
// handler only write()s the signal number to a pipe (async-signal-safe); a
// watcher thread reads it and cancels the token, which every store
// operation (CancellableBlobStore) and vault RPC (CancelScope) observes. The
// stores then delete what the stopped operation wrote (a `.tmp-*` object, a
// multipart upload, a WebDAV temporary) and a restore removes its staging
// folder, as after any failure. A second signal is not caught: it ends the
// process at once.
//
// One watcher at a time per process; construct and destroy on one thread.

#include <atomic>
#include <csignal>
#include <thread>

#include "client/cancel.h"

namespace bkv::cli {

class InterruptWatcher {
 public:
  // Installs the handlers; `token` must outlive the watcher.
  explicit InterruptWatcher(CancelToken& token);
  // Restores the previous handlers.
  ~InterruptWatcher();
  InterruptWatcher(const InterruptWatcher&) = delete;
  InterruptWatcher& operator=(const InterruptWatcher&) = delete;

  // The signal that cancelled the token, 0 if none arrived.
  int signal() const;

 private:
  void Watch(CancelToken& token);

  int pipe_[2] = {-1, -1};
  int stop_[2] = {-1, -1};
  std::atomic<int> signal_{0};
  std::atomic<bool> stopping_{false};
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
  std::thread thread_;
};

}  // namespace bkv::cli

#endif  // BKV_CLIENT_CLI_INTERRUPT_H_
