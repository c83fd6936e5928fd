#ifndef BKV_TESTS_CLIENT_RUN_PROGRAM_H_
#define BKV_TESTS_CLIENT_RUN_PROGRAM_H_

// Runs a test program that can't use the C++ harness itself (the C ABI's C
// programs, the JUnit suite) with the environment the harness prepared.

#include <spawn.h>
#include <sys/wait.h>

#include <string>
#include <vector>

extern char** environ;

namespace bkv::testing {

// Spawns argv (argv[0] found on PATH) with the current environment plus
// `extra` ("NAME=value"); returns its wait status, or -1 if it could not be
// started.
inline int RunProgram(std::vector<std::string> argv,
                      const std::vector<std::string>& extra) {
  std::vector<std::string> env_strings(extra);
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), envp.data()) !=
      0) {
    return -1;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

}  // namespace bkv::testing

#endif  // BKV_TESTS_CLIENT_RUN_PROGRAM_H_
