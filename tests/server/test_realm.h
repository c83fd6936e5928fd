#ifndef BKV_TESTS_SERVER_TEST_REALM_H_
#define BKV_TESTS_SERVER_TEST_REALM_H_

// The malicious realm of the threshold tests (docs/threshold.md, "Tests
// against three realms"). Compiled only into `bkv-vault-testrealm`, a test
// executable: server/main.cc and server/vault_threshold.cc are built a second
// time with BKV_TEST_REALM defined. The release `bkv-vault`, `cmake
// --install` and the container never contain it.
//
//   bkv-vault-testrealm --test-fault MODE serve ...
//     ignore-counter  ThresholdRecoverStart evaluates the stored share and
//                     proves it honestly, but counts nothing, writes nothing
//                     and issues no login (what a realm whose operator
//                     removed its counter answers)
//     known-key       answers with a key of its own and a valid proof for
//                     that key, not for its committed share (uncounted)
//     garbage         random KE2 and proof bytes (uncounted)
namespace bkv::server::test_realm {

enum class Fault { kNone, kIgnoreCounter, kKnownKey, kGarbage };

// The fault chosen at start (kNone until TakeFlags saw one).
Fault Mode();

// Removes `--test-fault MODE` from argv (anywhere) and records it; exits
// with a message for an unknown MODE.
void TakeFlags(int& argc, char** argv);

}  // namespace bkv::server::test_realm

#endif  // BKV_TESTS_SERVER_TEST_REALM_H_
