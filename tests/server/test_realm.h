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
//   Lies in the free calls (everything else honest, counting included;
//   docs/threshold.md, "A realm that lies in its status or at Prepare"):
//     status-newer    ThresholdStatus claims an ACTIVE version one epoch
//                     newer (its descriptor with epoch + 1 and another
//                     version: another commitment)
//     status-more     ThresholdStatus reports more attempts than its limit
//     status-fewer    ThresholdStatus reports 1 attempt left
//     status-locked   ThresholdStatus says LOCKED with 0 attempts left
//     status-garbage  ThresholdStatus sends a random descriptor
//     prepare-skip    ThresholdRegisterPrepare answers OK, stores nothing
//   A crash (docs/storage.md, "a Shred cut short by a crash"):
//     kill-before-shred  ThresholdRegisterCommit SIGKILLs the process once
//                     its write is durable and before the Shred of the
//                     version it replaced
//
//   bkv-vault-testrealm --test-fault-file F serve ...
//     the mode is read from file F at every call (empty or missing: none),
//     so one process can play several lies in one test.
namespace bkv::server::test_realm {

enum class Fault {
  kNone,
  kIgnoreCounter,
  kKnownKey,
  kGarbage,
  kStatusNewer,
  kStatusMore,
  kStatusFewer,
  kStatusLocked,
  kStatusGarbage,
  kPrepareSkip,
  kKillBeforeShred
};

// The fault now (the start's, or F's content; kNone without either).
Fault Mode();
// One of the modes that replace ThresholdRecoverStart's answer.
bool LiesAtRecoverStart(Fault f);

// Removes `--test-fault MODE` / `--test-fault-file F` from argv (anywhere)
// and records it; exits with a message for an unknown MODE.
void TakeFlags(int& argc, char** argv);

}  // namespace bkv::server::test_realm

#endif  // BKV_TESTS_SERVER_TEST_REALM_H_
