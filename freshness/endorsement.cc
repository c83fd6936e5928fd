#include "freshness/endorsement.h"

#include <sodium.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "hsm/key_labels.h"

namespace bkv::freshness {
namespace {

using fresh::v1::Certificate;
using fresh::v1::EndorseRequest;
using fresh::v1::EndorserState;
using fresh::v1::HeadRef;

constexpr absl::string_view kTableContext = "bkv.fresh.table.v1";
constexpr absl::string_view kMembersContext = "bkv.fresh.members.v1";
constexpr absl::string_view kStatementContext = "bkv.fresh.endorse.v1";
constexpr size_t kMaxMembers = 64;

// Byte by byte: GCC 12's -Warray-bounds misreads a range insert here.
template <typename Bytes>
void Put(std::vector<uint8_t>& out, const Bytes& bytes) {
  for (auto b : bytes) out.push_back(static_cast<uint8_t>(b));
}

Digest Sha256(const std::vector<uint8_t>& in) {
  Digest d;
  crypto_hash_sha256(d.data(), in.data(), in.size());
  return d;
}

const std::string& ZeroDigest() {
  static const std::string* zero = new std::string(32, '\0');
  return *zero;
}

// Heads are ordered by term, then seq.
bool NotOlder(const HeadRef& a, const HeadRef& b) {
  return std::make_pair(a.term(), a.seq()) >= std::make_pair(b.term(), b.seq());
}

absl::StatusOr<Member> ParseMemberLine(absl::string_view line) {
  std::vector<absl::string_view> f =
      absl::StrSplit(line, ' ', absl::SkipWhitespace());
  Member m;
  absl::StatusOr<std::vector<uint8_t>> key =
      f.size() == 3 ? HexDecode(std::string_view(f[1].data(), f[1].size()))
                    : absl::InvalidArgumentError("fields");
  if (!key.ok() || !absl::SimpleAtoi(f[0], &m.id) ||
      key->size() != m.key.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "members: bad line '", line,
        "': expected `<node id> <64 hex digits of its endorsement public "
        "key> <host:port>` (`bkv-vault cluster keygen` prints the key)"));
  }
  std::copy(key->begin(), key->end(), m.key.begin());
  m.peer_address = std::string(f[2]);
  return m;
}

}  // namespace

Digest TableDigest(const HeadTable& t) {
  std::vector<uint8_t> in;
  Put(in, kTableContext);
  Put(in, EncodeHeads(t));
  return Sha256(in);
}

absl::StatusOr<Members> Members::Create(std::vector<Member> members) {
  if (members.empty() || members.size() > kMaxMembers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "members: 1 to ", kMaxMembers, " nodes, not ", members.size()));
  }
  std::sort(members.begin(), members.end(),
            [](const Member& a, const Member& b) { return a.id < b.id; });
  std::set<hsm::EndorsementKey::PublicKey> keys;
  std::vector<uint8_t> in;
  Put(in, kMembersContext);
  for (size_t i = 0; i < members.size(); ++i) {
    if ((i > 0 && members[i].id == members[i - 1].id) ||
        !keys.insert(members[i].key).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "members: node ", members[i].id,
          " appears twice (same id or same key): each node has its own"));
    }
    PutBigEndian(in, members[i].id, 4);
    Put(in, members[i].key);
  }
  const Digest d = Sha256(in);
  return Members(std::move(members), d);
}

absl::StatusOr<Members> Members::Parse(absl::string_view text) {
  std::vector<Member> members;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    BKV_ASSIGN_OR_RETURN(Member m, ParseMemberLine(line));
    members.push_back(std::move(m));
  }
  return Create(std::move(members));
}

std::string Members::Encode() const {
  std::string out;
  for (const Member& m : members_) {
    absl::StrAppend(&out, m.id, " ", HexEncode(m.key), " ", m.peer_address,
                    "\n");
  }
  return out;
}

const Member* Members::Find(uint32_t id) const {
  for (const Member& m : members_) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

std::vector<uint8_t> Statement(const Digest& members, uint32_t node,
                               const HeadRef& head) {
  std::vector<uint8_t> out;
  out.reserve(160);
  Put(out, kStatementContext);
  Put(out, members);
  PutBigEndian(out, node, 4);
  PutBigEndian(out, head.term(), 8);
  PutBigEndian(out, head.seq(), 8);
  Put(out, head.prev_digest());
  Put(out, head.digest());
  return out;
}

absl::Status VerifyCertificate(const Members& members, const Certificate& c) {
  if (c.head().prev_digest().size() != 32 || c.head().digest().size() != 32) {
    return absl::InvalidArgumentError("certificate: malformed head");
  }
  std::set<uint32_t> signers;
  for (const auto& e : c.endorsements()) {
    const Member* m = members.Find(e.node_id());
    hsm::EndorsementKey::Signature sig;
    if (m == nullptr || e.signature().size() != sig.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("certificate: endorsement by node ", e.node_id(),
                       " is not from a member or is malformed"));
    }
    std::copy(e.signature().begin(), e.signature().end(), sig.begin());
    if (!hsm::VerifyEndorsement(
            m->key, Statement(members.digest(), m->id, c.head()), sig)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "certificate: node ", m->id, "'s signature does not verify"));
    }
    signers.insert(m->id);
  }
  if (signers.size() < members.quorum()) {
    return absl::InvalidArgumentError(
        absl::StrCat("certificate: ", signers.size(),
                     " distinct signers, a majority is ", members.quorum()));
  }
  return absl::OkStatus();
}

HeadRef HeldHead(const EndorserState& s) {
  HeadRef h;
  h.set_term(s.held_term());
  h.set_prev_digest(s.held_prev_digest().empty() ? ZeroDigest()
                                                 : s.held_prev_digest());
  h.set_digest(ZeroDigest());
  if (s.held_table().empty()) return h;
  const std::string& t = s.held_table();
  auto table = ParseHeadsString(t);
  if (!table.ok()) return h;  // Endorser::Open refuses such a state
  h.set_seq(table->seq);
  h.set_digest(DigestBytes(TableDigest(*table)));
  return h;
}

absl::StatusOr<EndorserState> DecideEndorse(const Members& members,
                                            const EndorserState& state,
                                            const EndorseRequest& request,
                                            HeadRef* signed_head) {
  if (request.term() < state.promised_term()) {
    return absl::FailedPreconditionError(
        absl::StrCat("fenced: this endorser promised term ",
                     state.promised_term(), " to a later owner; term ",
                     request.term(), " may not extend the chain"));
  }
  const std::string& bytes = request.next_table();
  auto next = ParseHeadsString(bytes);
  if (!next.ok() || request.prev_digest().size() != 32) {
    return absl::InvalidArgumentError("endorse: malformed table or digest");
  }
  const HeadRef held = HeldHead(state);
  const std::string digest = DigestBytes(TableDigest(*next));
  const bool successor =
      request.prev_digest() == held.digest() && next->seq > held.seq();
  const bool same = !state.held_table().empty() && digest == held.digest() &&
                    request.prev_digest() == held.prev_digest();
  const Certificate& cert = request.prev_certificate();
  const bool certified = request.has_prev_certificate() &&
                         cert.head().digest() == request.prev_digest() &&
                         cert.head().seq() < next->seq &&
                         NotOlder(cert.head(), held) &&
                         VerifyCertificate(members, cert).ok();
  if (!successor && !same && !certified) {
    return absl::AbortedError(absl::StrCat(
        "not a successor: this endorser holds seq ", held.seq(), " of term ",
        held.term(), "; send the certificate of the head this one extends"));
  }
  EndorserState out = state;
  out.set_promised_term(request.term());
  out.set_held_term(request.term());
  out.set_held_prev_digest(request.prev_digest());
  out.set_held_table(bytes);
  if (certified && (!state.has_newest_certificate() ||
                    NotOlder(cert.head(), state.newest_certificate().head()))) {
    *out.mutable_newest_certificate() = cert;
  }
  signed_head->set_term(request.term());
  signed_head->set_seq(next->seq);
  signed_head->set_prev_digest(request.prev_digest());
  signed_head->set_digest(digest);
  return out;
}

absl::StatusOr<EndorserState> DecidePrepare(const EndorserState& state,
                                            uint64_t term) {
  if (term <= state.promised_term()) {
    return absl::FailedPreconditionError(
        absl::StrCat("fenced: this endorser already promised term ",
                     state.promised_term(), "; take over with a higher term"));
  }
  EndorserState out = state;
  out.set_promised_term(term);
  return out;
}

absl::StatusOr<std::unique_ptr<Endorser>> Endorser::Open(
    std::shared_ptr<hsm::Pkcs11Hsm> token, Members members, uint32_t node_id) {
  BKV_ASSIGN_OR_RETURN(auto key, hsm::EndorsementKey::Open(token));
  const Member* self = members.Find(node_id);
  if (self == nullptr || self->key != key->public_key()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "node ", node_id,
        " is not in the members list with this token's endorsement key: "
        "check node_id, or re-form the cluster (docs/operations.md)"));
  }
  BKV_ASSIGN_OR_RETURN(auto object,
                       hsm::AnchoredObject::Open(token, hsm::kEndorsedLabel,
                                                 hsm::kEndorsedMacLabel));
  BKV_ASSIGN_OR_RETURN(auto stored, object->Read());
  EndorserState state;
  if (stored &&
      !state.ParseFromArray(stored->data(), static_cast<int>(stored->size()))) {
    return absl::DataLossError(
        absl::StrCat(token->Describe(), ": the endorser state does not parse"));
  }
  return std::unique_ptr<Endorser>(
      new Endorser(std::move(object), std::move(key), std::move(members),
                   node_id, std::move(state)));
}

absl::Status Endorser::Store(const EndorserState& next) {
  std::string bytes;
  if (!next.SerializeToString(&bytes)) {
    return absl::InternalError("endorser state does not serialize");
  }
  BKV_RETURN_IF_ERROR(object_->Write(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
  state_ = next;
  return absl::OkStatus();
}

absl::StatusOr<fresh::v1::Endorsement> Endorser::Endorse(
    const EndorseRequest& request) {
  absl::MutexLock lock(&mu_);
  HeadRef head;
  BKV_ASSIGN_OR_RETURN(EndorserState next,
                       DecideEndorse(members_, state_, request, &head));
  BKV_RETURN_IF_ERROR(Store(next));
  BKV_ASSIGN_OR_RETURN(
      auto sig, key_->Sign(Statement(members_.digest(), node_id_, head)));
  fresh::v1::Endorsement e;
  e.set_node_id(node_id_);
  e.set_signature(std::string(sig.begin(), sig.end()));
  return e;
}

absl::StatusOr<PrepareResult> Endorser::Prepare(uint64_t term) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<EndorserState> next = DecidePrepare(state_, term);
  if (!next.ok()) return PrepareResult{false, state_};
  BKV_RETURN_IF_ERROR(Store(*next));
  return PrepareResult{true, state_};
}

EndorserState Endorser::State() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

}  // namespace bkv::freshness
