#include "tests/server/test_realm.h"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace bkv::server::test_realm {
namespace {

Fault g_fault = Fault::kNone;
std::string g_fault_file;

constexpr std::pair<std::string_view, Fault> kModes[] = {
    {"ignore-counter", Fault::kIgnoreCounter},
    {"known-key", Fault::kKnownKey},
    {"garbage", Fault::kGarbage},
    {"status-newer", Fault::kStatusNewer},
    {"status-more", Fault::kStatusMore},
    {"status-fewer", Fault::kStatusFewer},
    {"status-locked", Fault::kStatusLocked},
    {"status-garbage", Fault::kStatusGarbage},
    {"prepare-skip", Fault::kPrepareSkip},
    {"kill-before-shred", Fault::kKillBeforeShred}};

std::optional<Fault> Find(std::string_view mode) {
  for (const auto& [name, f] : kModes) {
    if (name == mode) return f;
  }
  return std::nullopt;
}

Fault Parse(std::string_view mode) {
  if (auto f = Find(mode)) return *f;
  std::cerr << "bkv-vault-testrealm: unknown --test-fault mode (see "
               "tests/server/test_realm.h)\n";
  std::exit(2);
}

}  // namespace

Fault Mode() {
  if (g_fault_file.empty()) return g_fault;
  std::ifstream in(g_fault_file);
  std::string mode;
  in >> mode;
  return Find(mode).value_or(Fault::kNone);  // empty or missing: honest
}

bool LiesAtRecoverStart(Fault f) {
  return f == Fault::kIgnoreCounter || f == Fault::kKnownKey ||
         f == Fault::kGarbage;
}

void TakeFlags(int& argc, char** argv) {
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--test-fault" && i + 1 < argc) {
      g_fault = Parse(argv[++i]);
      continue;
    }
    if (std::string_view(argv[i]) == "--test-fault-file" && i + 1 < argc) {
      g_fault_file = argv[++i];
      continue;
    }
    argv[out++] = argv[i];
  }
  argc = out;
  argv[argc] = nullptr;
  if (g_fault != Fault::kNone || !g_fault_file.empty()) {
    std::cerr << "{\"level\":\"warn\",\"event\":\"test_realm_fault\","
                 "\"note\":\"a malicious test realm: never deploy\"}\n";
  }
}

}  // namespace bkv::server::test_realm
