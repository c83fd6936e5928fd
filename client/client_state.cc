#include "client/client_state.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "client/posix_file.h"

namespace bkv {

uint64_t RecallCounter(const std::string& dir, const std::string& name) {
  if (dir.empty()) return 0;
  std::ifstream in(dir + "/" + name);
  uint64_t seen = 0;
  if (!(in >> seen)) return 0;
  return seen;
}

absl::Status RememberCounter(const std::string& dir, const std::string& name,
                             uint64_t value) {
  return RememberLine(dir, name, std::to_string(value));
}

std::string RecallLine(const std::string& dir, const std::string& name) {
  if (dir.empty()) return "";
  std::ifstream in(dir + "/" + name);
  std::string line;
  std::getline(in, line);
  return line;
}

absl::Status RememberLine(const std::string& dir, const std::string& name,
                          const std::string& line) {
  if (dir.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  const std::string path = dir + "/" + name;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << line << "\n";
    if (!out.flush()) return ErrnoStatus(errno, "write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, "rename " + tmp);
  }
  return absl::OkStatus();
}

}  // namespace bkv
