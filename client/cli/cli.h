#ifndef BKV_CLIENT_CLI_CLI_H_
#define BKV_CLIENT_CLI_CLI_H_

#include <cstdio>
#include <string>
#include <vector>

namespace bkv::cli {

// Exit codes of `bkv` (also printed by `bkv --help`).
enum ExitCode : int {
  kOk = 0,
  kFailure = 1,         // anything not listed below
  kUsage = 2,           // bad command line, or vault configuration mismatch
  kWrongKey = 3,        // the key does not open this backup or store
  kCorrupted = 4,       // backup data truncated, modified or out of order
  kNotFound = 5,        // no such backup, object or file
  kUnavailable = 6,     // store or server unreachable, I/O error
  kAlreadyExists = 7,   // restore target (non-empty) or --out file exists
  kLocked = 8,          // vault: attempts used up, the key is destroyed
  kVaultAuth = 9,       // vault: the account token was refused
  kOtherPasskey = 10,   // passkey: the one used has no slot in this set
  kPasskeyOutput = 11,  // passkey: its PRF output does not open its slot
  kNoPrf = 12,          // passkey: the authenticator lacks the prf extension
  kPageTimedOut = 13,   // passkey page: no result before --passkey-timeout
  kPageClosed = 14,     // passkey page closed, or the prompt cancelled
  // realms migrate: the key moved, but a realm that left still holds the
  // replaced registration (docs/threshold.md, "When C cannot be deleted").
  kLeaverLeft = 15,
  // vault change-password --realms: the NEW password is in force (t or more
  // realms took it), but a realm named on stderr did not.
  kChangedDegraded = 16,
  // vault change-password --realms: either password may be in force (the
  // message says why): run the same change again.
  kChangeUnknown = 17,
  // backup/restore stopped by signal N exit 128 + N (130 SIGINT, 143
  // SIGTERM) after deleting what the run left unfinished.
  kInterruptedBase = 128,
};

// Every command and subcommand (e.g. "vault status"); each answers --help.
std::vector<std::string> CommandNames();

// Runs one command. Secrets are read from files or stdin, never from argv.
int Run(int argc, char** argv, FILE* out, FILE* err);

}  // namespace bkv::cli

#endif  // BKV_CLIENT_CLI_CLI_H_
