#ifndef BKV_TESTS_CLIENT_CLI_RUNNER_H_
#define BKV_TESTS_CLIENT_CLI_RUNNER_H_

// Runs the real bkv binary (BKV_CLI_PATH) with arguments and stdin, for the
// suites that drive it against a real vault.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#ifndef BKV_CLI_PATH
#error "BKV_CLI_PATH must name the bkv binary"
#endif

namespace bkv {

struct CliRun {
  int exit_code;
  std::string out, err;
};

// Starts bkv with `args`, feeding `input` on stdin, its output going to
// dir/out.txt and dir/err.txt; returns its pid (BkvWait collects it).
inline pid_t BkvStart(const std::vector<std::string>& args,
                      const std::string& input,
                      const std::filesystem::path& dir) {
  const std::filesystem::path out = dir / "out.txt", err = dir / "err.txt",
                              in = dir / "in.txt";
  std::ofstream(in) << input;
  pid_t pid = fork();
  if (pid == 0) {
    int i = open(in.c_str(), O_RDONLY);
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(i, 0);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv = {const_cast<char*>(BKV_CLI_PATH)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// The wait status of a bkv started by BkvStart as a CliRun (exit code -1
// when it did not exit: killed).
inline CliRun BkvResult(int status, const std::filesystem::path& dir) {
  auto slurp = [](const std::filesystem::path& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), {});
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir / "out.txt"),
          slurp(dir / "err.txt")};
}

// Runs bkv with `args`, feeding `input` on stdin. Bounded by the vault's
// own deadlines; nothing here loops.
inline CliRun Bkv(const std::vector<std::string>& args,
                  const std::string& input, const std::filesystem::path& dir) {
  const pid_t pid = BkvStart(args, input, dir);
  int status = 0;
  waitpid(pid, &status, 0);
  return BkvResult(status, dir);
}

}  // namespace bkv

#endif  // BKV_TESTS_CLIENT_CLI_RUNNER_H_
