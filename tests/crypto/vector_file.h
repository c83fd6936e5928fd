#ifndef BKV_TESTS_CRYPTO_VECTOR_FILE_H_
#define BKV_TESTS_CRYPTO_VECTOR_FILE_H_

#include <map>
#include <string>
#include <vector>

namespace bkv::testing {

// A test-vector file as copied from the RFCs into tests/vectors/: sections
// start with "## Title"; values are "name = hex" or "name: hex"; lines
// starting with "#" (other than "##"), "###" and blanks are ignored.
struct VectorSection {
  std::string title;
  std::map<std::string, std::string> values;

  bool Has(const std::string& key) const { return values.count(key) > 0; }
  // The value decoded from hex; fails the test if absent or malformed.
  std::vector<uint8_t> Bytes(const std::string& key) const;
  std::string Hex(const std::string& key) const;
};

// Reads tests/vectors/<name> under $BKV_SOURCE_DIR (set by ctest). Values
// before the first "##" land in a section titled "".
std::vector<VectorSection> ReadVectorFile(const std::string& name);

}  // namespace bkv::testing

#endif  // BKV_TESTS_CRYPTO_VECTOR_FILE_H_
