#include "tests/crypto/vector_file.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "crypto/hex.h"

namespace bkv::testing {
namespace {
std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}
}  // namespace

std::vector<uint8_t> VectorSection::Bytes(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end()) {
    ADD_FAILURE() << "vector '" << title << "' has no value '" << key << "'";
    return {};
  }
  auto decoded = HexDecode(it->second);
  if (!decoded.ok()) {
    ADD_FAILURE() << "vector '" << title << "' value '" << key
                  << "': " << decoded.status();
    return {};
  }
  return *decoded;
}

std::string VectorSection::Hex(const std::string& key) const {
  return HexEncode(Bytes(key));
}

std::vector<VectorSection> ReadVectorFile(const std::string& name) {
  const char* root = std::getenv("BKV_SOURCE_DIR");
  std::string path = std::string(root ? root : ".") + "/tests/vectors/" + name;
  std::ifstream in(path);
  if (!in) {
    ADD_FAILURE() << "cannot open vector file " << path;
    return {};
  }
  std::vector<VectorSection> sections(1);
  std::string line;
  while (std::getline(in, line)) {
    line = Trim(line);
    if (line.empty() || line.rfind("###", 0) == 0) continue;
    if (line.rfind("## ", 0) == 0) {
      sections.push_back(VectorSection{Trim(line.substr(3)), {}});
      continue;
    }
    if (line[0] == '#') continue;
    size_t sep = line.find_first_of("=:");
    if (sep == std::string::npos) continue;
    sections.back().values[Trim(line.substr(0, sep))] =
        Trim(line.substr(sep + 1));
  }
  return sections;
}

}  // namespace bkv::testing
