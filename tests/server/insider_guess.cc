// bkv-insider-guess: what one realm's insider can do offline (issue 18,
// "Insider"; docs/threshold.md, "What each party can and cannot do"). Given a
// stopped realm's data directory, its SoftHSM token directory and user PIN,
// it unseals the account's realm record with the realm's own keys, reads the
// realm's key share k_i, its OPAQUE record and AKE key, and tests each
// candidate of a word list offline: OPRF under the only key it holds, the
// KSF, and the envelope check against its own record (the full RFC 9807
// login, played against itself). For an n = 1 realm the share is the key and
// the right password is confirmed; for t >= 2 a single share is a uniformly
// random scalar and nothing is. A test tool, never installed.
//
//   bkv-insider-guess --data-dir DIR [--softhsm-dir DIR/softhsm]
//       [--pin-file SOFTHSM/user.pin] --account ID --wordlist FILE
//   stdout: {"t":2,"tried":N,"confirmed":M,"share_present":true,"ms":T}
//   (confirmed passwords are never printed; exit 0, or 1 with a message)
#include <rocksdb/db.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "crypto/ksf.h"
#include "crypto/opaque.h"
#include "crypto/status_macros.h"
#include "crypto/threshold_descriptor.h"
#include "hsm/key_ceremony.h"
#include "hsm/softhsm_dev.h"
#include "server/hsm_command.h"
#include "storage/record_codec.h"

namespace bkv::insider {
namespace {

struct Flags {
  std::string data_dir, softhsm_dir, pin_file, account, wordlist;
};

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The account's record, unsealed with the realm's own token.
absl::StatusOr<storage::v1::UserRecord> OpenRealmRecord(
    const Flags& f, const hsm::VaultKeys& keys) {
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(
      rocksdb::Options(), f.data_dir + "/records", &raw);
  if (!s.ok()) return absl::UnavailableError(s.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  const storage::AccountKey key = storage::DeriveAccountKey(f.account);
  std::string value;
  s = db->Get(rocksdb::ReadOptions(), storage::RecordDbKey(key), &value);
  if (!s.ok()) return absl::NotFoundError("no record for the account");
  return storage::OpenRecord(keys.sealer, key, Bytes(value));
}

struct Target {
  threshold::Descriptor descriptor;
  size_t position = 0;
  SecretBytes share;  // k_i
  opaque::RegistrationRecord record;
};

absl::StatusOr<Target> TargetOf(const storage::v1::UserRecord& r,
                                const opaque::ServerKeyPair& keys) {
  if (!r.has_realm()) {
    return absl::FailedPreconditionError("not a realm record (format 2)");
  }
  BKV_ASSIGN_OR_RETURN(auto d, threshold::Descriptor::Parse(
                                   Bytes(r.realm().descriptor_bytes())));
  BKV_ASSIGN_OR_RETURN(
      auto record, opaque::RegistrationRecord::Parse(Bytes(r.opaque_record())));
  for (size_t i = 0; i < d.realms.size(); ++i) {
    if (d.realms[i].identity_key != keys.public_key) continue;
    return Target{d, i, SecretBytes::Copy(r.realm().oprf_key_share()),
                  std::move(record)};
  }
  return absl::FailedPreconditionError("this realm is not in the descriptor");
}

// One candidate: the whole login against the realm's own record, with the
// OPRF evaluated under the share (the only key this insider holds).
bool Confirms(const Target& t, const opaque::OpaqueServer& server,
              const opaque::OpaqueClient& client, const std::string& pw) {
  auto start = client.GenerateThresholdKE1(SecretBytes::Copy(pw),
                                           t.descriptor.realms.size());
  if (!start.ok()) return false;
  auto ke2 =
      server.GenerateKE2WithOprfKey(t.record, t.share, start->ke1s[t.position]);
  if (!ke2.ok()) return false;
  auto rwd = client.ThresholdRandomizedPassword(start->state,
                                                ke2->ke2.evaluated_message);
  if (!rwd.ok()) return false;
  const auto bytes = ke2->ke2.Serialize();
  return client
      .FinishThresholdLogin(start->state, t.position, *rwd, server.public_key(),
                            bytes)
      .ok();
}

absl::Status Run(const Flags& f) {
  BKV_RETURN_IF_ERROR(
      hsm::PrepareSoftHsmDir(f.softhsm_dir, "bkv", "", false).status());
  server::HsmFlags hf;
  hf.pin_file = f.pin_file;
  hf.softhsm_dir = f.softhsm_dir;
  BKV_ASSIGN_OR_RETURN(auto token, server::OpenHsm(hf));
  BKV_ASSIGN_OR_RETURN(auto keys, hsm::VaultKeys::Load(token));
  BKV_ASSIGN_OR_RETURN(auto server_keys,
                       opaque::ServerKeyPair::FromPrivateKey(
                           keys.ake.RevealPrivateKey().Reveal()));
  BKV_ASSIGN_OR_RETURN(auto record, OpenRealmRecord(f, keys));
  BKV_ASSIGN_OR_RETURN(Target target, TargetOf(record, server_keys));
  BKV_ASSIGN_OR_RETURN(auto ksf, Argon2idKsf::Create(target.descriptor.ksf));
  opaque::OpaqueServer server(opaque::Config{}, keys.oprf_seed, server_keys);
  opaque::OpaqueClient client(opaque::Config{}, ksf, server_keys.public_key);
  std::ifstream words(f.wordlist);
  if (!words) return absl::NotFoundError("cannot read the word list");
  const auto begin = std::chrono::steady_clock::now();
  int tried = 0, confirmed = 0;
  for (std::string pw; std::getline(words, pw);) {
    ++tried;
    if (Confirms(target, server, client, pw)) ++confirmed;
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - begin)
                      .count();
  std::cout << "{\"t\":" << int{target.descriptor.t} << ",\"tried\":" << tried
            << ",\"confirmed\":" << confirmed << ",\"share_present\":"
            << (target.share.size() == 32 ? "true" : "false")
            << ",\"ms\":" << ms << "}\n";
  return absl::OkStatus();
}

}  // namespace
}  // namespace bkv::insider

int main(int argc, char** argv) {
  bkv::insider::Flags f;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--data-dir")
      f.data_dir = v;
    else if (k == "--softhsm-dir")
      f.softhsm_dir = v;
    else if (k == "--pin-file")
      f.pin_file = v;
    else if (k == "--account")
      f.account = v;
    else if (k == "--wordlist")
      f.wordlist = v;
    else {
      std::cerr << "bkv-insider-guess: unknown flag " << k << "\n";
      return 2;
    }
  }
  if (f.softhsm_dir.empty()) f.softhsm_dir = f.data_dir + "/softhsm";
  if (f.pin_file.empty()) f.pin_file = f.softhsm_dir + "/user.pin";
  if (auto s = bkv::insider::Run(f); !s.ok()) {
    std::cerr << "bkv-insider-guess: " << s << "\n";
    return 1;
  }
  return 0;
}
