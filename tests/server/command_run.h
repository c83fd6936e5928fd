#ifndef BKV_TESTS_SERVER_COMMAND_RUN_H_
#define BKV_TESTS_SERVER_COMMAND_RUN_H_

// Running a command line in CLI tests: stdout and stderr go through files in
// a test's temporary directory. Commands hold test-controlled paths and
// flags only; no PIN ever goes into one.

#include <stdlib.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>

namespace bkv::testing {

struct CommandResult {
  int exit_code;
  std::string out, err;
};

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// `cmd` through /bin/sh; its output is kept in `dir`/out and `dir`/err.
inline CommandResult RunShell(const std::string& cmd, const std::string& dir) {
  const std::string out = dir + "/out", err = dir + "/err";
  int status = std::system((cmd + " >'" + out + "' 2>'" + err + "'").c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, Slurp(out), Slurp(err)};
}

// The rest of the line of `text` that follows `key`; "" if absent.
inline std::string LineAfter(const std::string& text, const std::string& key) {
  size_t at = text.find(key);
  if (at == std::string::npos) return "";
  size_t end = text.find('\n', at);
  return text.substr(at + key.size(), end - at - key.size());
}

}  // namespace bkv::testing

#endif  // BKV_TESTS_SERVER_COMMAND_RUN_H_
