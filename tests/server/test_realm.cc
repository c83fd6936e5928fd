#include "tests/server/test_realm.h"

#include <cstdlib>
#include <iostream>
#include <string_view>

namespace bkv::server::test_realm {
namespace {

Fault g_fault = Fault::kNone;

Fault Parse(std::string_view mode) {
  if (mode == "ignore-counter") return Fault::kIgnoreCounter;
  if (mode == "known-key") return Fault::kKnownKey;
  if (mode == "garbage") return Fault::kGarbage;
  std::cerr << "bkv-vault-testrealm: --test-fault wants ignore-counter, "
               "known-key or garbage\n";
  std::exit(2);
}

}  // namespace

Fault Mode() { return g_fault; }

void TakeFlags(int& argc, char** argv) {
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--test-fault" && i + 1 < argc) {
      g_fault = Parse(argv[++i]);
      continue;
    }
    argv[out++] = argv[i];
  }
  argc = out;
  argv[argc] = nullptr;
  if (g_fault != Fault::kNone) {
    std::cerr << "{\"level\":\"warn\",\"event\":\"test_realm_fault\","
                 "\"note\":\"a malicious test realm: never deploy\"}\n";
  }
}

}  // namespace bkv::server::test_realm
