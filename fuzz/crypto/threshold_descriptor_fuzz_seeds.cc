// Writes a small seed corpus for threshold_descriptor_fuzzer into
// DIR/threshold_descriptor_fuzzer/ (scripts/fuzz.sh runs it before the
// fuzzers): descriptors for 1-of-1, 2-of-3, 3-of-5 and 8-of-15, each in two
// forms. "wire": a correct dealing, as a client sends it at Prepare (Parse
// accepts it). "sealed": the same layout with public shares on no
// polynomial, which only ParseSealed accepts (a realm's own sealed record is
// read without the dealing check). Without seeds the fuzzer hardly builds a
// descriptor that parses, so its floor check was hardly reached (review of
// rthr2, finding 6). Exits 1 if a seed does not parse as it should, so a
// stale generator is noticed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "crypto/random.h"
#include "crypto/shamir.h"
#include "crypto/threshold_descriptor.h"

namespace {

using bkv::SecretBytes;
using bkv::SystemRandom;
using bkv::threshold::Descriptor;
namespace ristretto255 = bkv::ristretto255;

bool PublicOf(const SecretBytes& scalar, ristretto255::Element& out) {
  auto e = ristretto255::ScalarMultBase(scalar);
  if (e.ok()) out = *e;
  return e.ok();
}

// The public shares K_i (or S_i) of a fresh t-of-n dealing of `secret`;
// `dealt` false: random elements instead (on no polynomial).
bool Shares(const SecretBytes& secret, int t, int n, bool dealt,
            std::vector<ristretto255::Element>& out) {
  auto shares = bkv::shamir::Split(secret, t, n, SystemRandom());
  if (!shares.ok()) return false;
  out.resize(n);
  for (int i = 0; i < n; ++i) {
    const SecretBytes random = SystemRandom().Scalar();
    if (!PublicOf(dealt ? (*shares)[i].value : random, out[i])) return false;
  }
  return true;
}

bool Make(int t, int n, bool dealt, Descriptor& d) {
  const SecretBytes k = SystemRandom().Scalar(), s = SystemRandom().Scalar();
  std::vector<ristretto255::Element> ks, ss;
  if (!Shares(k, t, n, dealt, ks) || !Shares(s, t, n, dealt, ss) ||
      !PublicOf(k, d.public_key) || !PublicOf(s, d.second_public_key)) {
    return false;
  }
  d.version = {1, 2, 3};
  d.epoch = static_cast<uint64_t>(n);
  d.t = t;
  d.advertised_limit = 10 * static_cast<uint32_t>(n - t + 1);
  d.per_realm_limit = 10;
  d.ksf = bkv::threshold::kMinKsf;
  for (int i = 0; i < n; ++i) {
    ristretto255::Element identity;
    if (!PublicOf(SystemRandom().Scalar(), identity)) return false;
    d.realms.push_back(
        {"realm-" + std::to_string(i + 1), identity, ks[i], ss[i]});
  }
  d.wrapped_hash.fill(0xaa);
  d.commit_hash.fill(0xbb);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: threshold_descriptor_fuzz_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir =
      std::filesystem::path(argv[1]) / "threshold_descriptor_fuzzer";
  std::filesystem::create_directories(dir);
  for (const auto [t, n] : {std::pair{1, 1}, {2, 3}, {3, 5}, {8, 15}}) {
    for (const bool dealt : {true, false}) {
      Descriptor d;
      if (!Make(t, n, dealt, d)) {
        std::fprintf(stderr, "seeds: could not deal %d-of-%d\n", t, n);
        return 1;
      }
      const std::vector<uint8_t> bytes = d.Serialize();
      const bool wire_ok = Descriptor::Parse(bytes).ok();
      if (!Descriptor::ParseSealed(bytes).ok() || wire_ok != dealt) {
        std::fprintf(stderr, "seeds: the %d-of-%d %s seed does not parse\n", t,
                     n, dealt ? "wire" : "sealed");
        return 1;
      }
      const std::string name = std::to_string(t) + "-of-" + std::to_string(n) +
                               (dealt ? "-wire" : "-sealed");
      std::ofstream(dir / name, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
    }
  }
  return 0;
}
