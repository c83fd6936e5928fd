#include "freshness/endorsement.h"

#include <sodium.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/cord.h"
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
// A list with a non-candidate: the same length, so no v1 input is a v2 one.
constexpr absl::string_view kCandidatesContext = "bkv.fresh.members.v2";
constexpr absl::string_view kStatementContext = "bkv.fresh.endorse.v1";
constexpr absl::string_view kRequestContext = "bkv.fresh.request.v1";
constexpr absl::string_view kRefusalContext = "bkv.fresh.refuse.v1";
constexpr absl::string_view kRecoverContext = "bkv.fresh.recover.v1";
constexpr uint8_t kEndorseKind = 1, kPrepareKind = 2, kRecoverKind = 3;
constexpr size_t kNonceSize = 32;
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

// OK iff `sig` is `node`'s signature over `statement`.
absl::Status VerifyBy(const Members& members, uint32_t node,
                      const std::string& sig,
                      const std::vector<uint8_t>& statement) {
  const Member* m = members.Find(node);
  hsm::EndorsementKey::Signature s;
  if (m == nullptr || sig.size() != s.size()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "node ", node, " is not a member or its signature is malformed"));
  }
  std::copy(sig.begin(), sig.end(), s.begin());
  if (!hsm::VerifyEndorsement(m->key, statement, s)) {
    return absl::PermissionDeniedError(
        absl::StrCat("node ", node, "'s signature does not verify"));
  }
  return absl::OkStatus();
}

// Review finding 5: a term or seq may not jump to the end of the space.
bool TooFar(uint64_t next, uint64_t current) {
  return next == UINT64_MAX ||
         next > current + std::min(kMaxStep, UINT64_MAX - current);
}

// Epochs, caps and ceremonies left change only by the SO's re-anchor
// ceremony (a carried decision): over the quorum path they stay as held.
absl::Status SameEpochsAndCaps(const EndorserState& state,
                               const HeadTable& next,
                               const HeadLimits& limits) {
  if (state.held_table().empty()) {
    // A first table (first forming: the owner's ceremony makes it): as
    // the ceremonies write them (budget review finding 5), its caps within
    // this node's K and its budget within this node's B, as on main.
    absl::Status in_range = CheckHeadRanges(next, limits);
    if (!in_range.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          "endorse: a first table out of range: ", in_range.message(),
          "; every member must have the owner's K"));
    }
    const uint32_t b = std::min(limits.ceremonies, kMaxCeremonies);
    for (const ShardHead& h : next.shards) {
      if (h.ceremonies_left > b) {
        return absl::PermissionDeniedError(absl::StrCat(
            "endorse: a first table with ", h.ceremonies_left,
            " re-anchors left in a shard's life, above this node's "
            "[freshness] reanchor_budget (",
            b, "): every member must have the owner's B"));
      }
    }
    return absl::OkStatus();
  }
  auto held = ParseHeadsString(state.held_table());
  bool same = held.ok() && held->shards.size() == next.shards.size();
  for (size_t i = 0; same && i < next.shards.size(); ++i) {
    same = held->shards[i].epoch == next.shards[i].epoch &&
           held->shards[i].cap == next.shards[i].cap &&
           held->shards[i].ceremonies_left == next.shards[i].ceremonies_left;
  }
  if (same) return absl::OkStatus();
  return absl::PermissionDeniedError(
      "endorse: the table changes shards, epochs, caps or ceremonies left; "
      "only the security officer's re-anchor ceremony may (docs/rollback.md)");
}

// The optional fourth field; no field: a candidate (every older list).
bool ParseCandidate(const std::vector<absl::string_view>& f, bool* candidate) {
  if (f.size() == 3) return true;
  if (f.size() != 4) return false;
  *candidate = f[3] == "candidate=true";
  return *candidate || f[3] == "candidate=false";
}

absl::StatusOr<Member> ParseMemberLine(absl::string_view line) {
  std::vector<absl::string_view> f =
      absl::StrSplit(line, ' ', absl::SkipWhitespace());
  Member m;
  absl::StatusOr<std::vector<uint8_t>> key =
      f.size() >= 3 ? HexDecode(std::string_view(f[1].data(), f[1].size()))
                    : absl::InvalidArgumentError("fields");
  if (!key.ok() || !absl::SimpleAtoi(f[0], &m.id) ||
      key->size() != m.key.size() || !ParseCandidate(f, &m.candidate)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "members: bad line '", line,
        "': expected `<node id> <64 hex digits of its endorsement public "
        "key> <host:port> [candidate=false]` (`bkv-vault cluster keygen` "
        "prints the key)"));
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
  const size_t candidates =
      std::count_if(members.begin(), members.end(),
                    [](const Member& m) { return m.candidate; });
  if (candidates == 0) {
    return absl::InvalidArgumentError(
        "members: no member is an owner candidate: nobody could own the "
        "chain; remove `candidate=false` from at least one line");
  }
  // A list that marks nobody keeps the v1 digest (formed clusters).
  const bool marks = candidates != members.size();
  std::vector<uint8_t> in;
  Put(in, marks ? kCandidatesContext : kMembersContext);
  for (size_t i = 0; i < members.size(); ++i) {
    if ((i > 0 && members[i].id == members[i - 1].id) ||
        !keys.insert(members[i].key).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "members: node ", members[i].id,
          " appears twice (same id or same key): each node has its own"));
    }
    PutBigEndian(in, members[i].id, 4);
    Put(in, members[i].key);
    if (marks) in.push_back(members[i].candidate ? 1 : 0);
  }
  const Digest d = Sha256(in);
  return Members(std::move(members), d);
}

Members::Members(std::vector<Member> m, const Digest& d)
    : members_(std::move(m)), digest_(d), list_digest_(d) {
  for (const Member& member : members_) {
    if (member.candidate) candidates_.push_back(member.id);
  }
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
                    m.candidate ? "" : " candidate=false", "\n");
  }
  return out;
}

Members Members::WithBase(const HeadRef& base) const {
  std::vector<uint8_t> in;
  Put(in, list_digest_);
  Put(in, std::string_view("base"));
  PutBigEndian(in, base.term(), 8);
  PutBigEndian(in, base.seq(), 8);
  Put(in, base.prev_digest());
  Put(in, base.digest());
  Members out(members_, Sha256(in));
  out.list_digest_ = list_digest_;
  out.base_ = base;
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

uint32_t ProposerOf(const Members& members, uint64_t term) {
  const std::vector<uint32_t>& c = members.candidates();
  return c[term % c.size()];
}

absl::StatusOr<uint64_t> NextTermOf(const Members& members, uint32_t node,
                                    uint64_t above) {
  const Member* m = members.Find(node);
  if (m == nullptr || !m->candidate) {
    return absl::OutOfRangeError(absl::StrCat(
        "node ", node,
        " is not an owner candidate in the members list: it proposes no term"));
  }
  const uint64_t n = members.candidates().size();
  for (uint64_t t = above + 1; t > above && t < above + 1 + n; ++t) {
    if (ProposerOf(members, t) == node && t != UINT64_MAX) return t;
  }
  return absl::OutOfRangeError(
      absl::StrCat("no owner term above ", above, " is left for node ", node));
}

namespace {

// The opening every request statement shares: context, members, kind.
std::vector<uint8_t> RequestHead(const Digest& members, uint8_t kind) {
  std::vector<uint8_t> out;
  Put(out, kRequestContext);
  Put(out, members);
  out.push_back(kind);
  return out;
}

std::string TableSha256(const std::string& table) {
  Digest d;
  crypto_hash_sha256(d.data(), reinterpret_cast<const uint8_t*>(table.data()),
                     table.size());
  return std::string(d.begin(), d.end());
}

std::vector<uint8_t> EndorseStatement(const Digest& members, uint64_t term,
                                      const std::string& prev_digest,
                                      const std::string& table_sha256) {
  std::vector<uint8_t> out = RequestHead(members, kEndorseKind);
  PutBigEndian(out, term, 8);
  Put(out, prev_digest);
  Put(out, table_sha256);
  return out;
}

}  // namespace

std::vector<uint8_t> RequestStatement(const Digest& members,
                                      const EndorseRequest& r) {
  return EndorseStatement(members, r.term(), r.prev_digest(),
                          TableSha256(r.next_table()));
}

std::vector<uint8_t> PrepareStatement(const Digest& members, uint64_t term) {
  std::vector<uint8_t> out = RequestHead(members, kPrepareKind);
  PutBigEndian(out, term, 8);
  return out;
}

std::vector<uint8_t> RefusalStatement(const Digest& members, uint32_t node,
                                      uint64_t promised) {
  std::vector<uint8_t> out;
  Put(out, kRefusalContext);
  Put(out, members);
  PutBigEndian(out, node, 4);
  PutBigEndian(out, promised, 8);
  return out;
}

std::vector<uint8_t> RecoverAskStatement(const Digest& members, uint32_t node,
                                         const std::string& nonce) {
  std::vector<uint8_t> out = RequestHead(members, kRecoverKind);
  PutBigEndian(out, node, 4);
  Put(out, nonce);
  return out;
}

std::vector<uint8_t> RecoverAnswerStatement(
    const Digest& members, uint32_t requester, const std::string& nonce,
    const fresh::v1::RecoverResponse& a) {
  const HeadRef& c = a.newest_certificate().head();
  std::vector<uint8_t> out;
  Put(out, kRecoverContext);
  Put(out, members);
  PutBigEndian(out, a.node_id(), 4);
  PutBigEndian(out, requester, 4);
  Put(out, nonce);
  PutBigEndian(out, a.promised_term(), 8);
  PutBigEndian(out, c.term(), 8);
  PutBigEndian(out, c.seq(), 8);
  Put(out, c.prev_digest().empty() ? ZeroDigest() : c.prev_digest());
  Put(out, c.digest().empty() ? ZeroDigest() : c.digest());
  return out;
}

absl::Status VerifyPromiseProof(const Members& members, uint64_t term,
                                const fresh::v1::PromiseProof& p) {
  std::vector<uint8_t> statement;
  if (p.term() != term) {
    return absl::PermissionDeniedError(
        absl::StrCat("the promise of term ", term,
                     " comes with a proof of term ", p.term()));
  }
  if (p.kind() == kPrepareKind) {
    statement = PrepareStatement(members.digest(), term);
  } else if (p.kind() == kEndorseKind && p.prev_digest().size() == 32 &&
             p.next_table_sha256().size() == 32) {
    statement = EndorseStatement(members.digest(), term, p.prev_digest(),
                                 p.next_table_sha256());
  } else {
    return absl::PermissionDeniedError(
        absl::StrCat("the promise of term ", term, " has no proof"));
  }
  return VerifyBy(members, ProposerOf(members, term), p.proposer_signature(),
                  statement);
}

absl::Status VerifyEndorsement(const Members& members, const HeadRef& head,
                               const fresh::v1::Endorsement& e) {
  return VerifyBy(members, e.node_id(), e.signature(),
                  Statement(members.digest(), e.node_id(), head));
}

absl::Status VerifyRefusal(const Members& members,
                           const fresh::v1::Refusal& r) {
  return VerifyBy(
      members, r.node_id(), r.signature(),
      RefusalStatement(members.digest(), r.node_id(), r.promised_term()));
}

absl::Status VerifyCertificate(const Members& members, const Certificate& c) {
  if (c.head().prev_digest().size() != 32 || c.head().digest().size() != 32) {
    return absl::InvalidArgumentError("certificate: malformed head");
  }
  // The base is certified by the ceremony in every member's token and by
  // the digest every statement carries (docs/rollback.md "Forming and
  // replacing members").
  if (const auto& base = members.base();
      base && c.endorsements().empty() && c.head().term() == base->term() &&
      c.head().seq() == base->seq() &&
      c.head().prev_digest() == base->prev_digest() &&
      c.head().digest() == base->digest()) {
    return absl::OkStatus();
  }
  std::set<uint32_t> signers;
  for (const auto& e : c.endorsements()) {
    if (absl::Status s = VerifyEndorsement(members, c.head(), e); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("certificate: ", s.message()));
    }
    signers.insert(e.node_id());
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

namespace {

// On the refusal path only: the non-candidate whose key made `signature`
// (lease3 review finding 4), so the refusal can say who tried.
std::optional<uint32_t> NonCandidateSigner(
    const Members& members, const std::string& signature,
    const std::vector<uint8_t>& statement) {
  for (const Member& m : members.all()) {
    if (!m.candidate && VerifyBy(members, m.id, signature, statement).ok()) {
      return m.id;
    }
  }
  return std::nullopt;
}

// The request is its term's proposer's (a candidate), and its term is the
// promised one or above within kMaxStep.
absl::Status CheckProposer(const Members& members, const EndorserState& state,
                           uint64_t term, const std::string& signature,
                           const std::vector<uint8_t>& statement) {
  if (TooFar(term, state.promised_term())) {
    return absl::InvalidArgumentError(
        absl::StrCat("term ", term, " is too far above the promised ",
                     state.promised_term()));
  }
  absl::Status s =
      VerifyBy(members, ProposerOf(members, term), signature, statement);
  if (s.ok()) return s;
  if (auto node = NonCandidateSigner(members, signature, statement)) {
    absl::Status refused = absl::PermissionDeniedError(absl::StrCat(
        "request for term ", term, " is signed by node ", *node,
        ", which is not an owner candidate in the members list "
        "(`candidate=false`): an endorser-only member proposes no term"));
    refused.SetPayload(kNotCandidatePayload, absl::Cord(absl::StrCat(*node)));
    return refused;
  }
  return absl::PermissionDeniedError(
      absl::StrCat("request for term ", term,
                   " is not signed by its proposer: ", s.message()));
}

// `cert` is valid, not older than the committed one, and, when `held` is
// from the same term or later, not older than it either.
bool Usable(const Members& members, const EndorserState& state,
            const Certificate& cert, const HeadRef& held, uint64_t term) {
  if (state.has_newest_certificate() &&
      !NotOlder(cert.head(), state.newest_certificate().head())) {
    return false;
  }
  if (term <= held.term() && !NotOlder(cert.head(), held)) return false;
  return VerifyCertificate(members, cert).ok();
}

}  // namespace

absl::StatusOr<EndorserState> DecideEndorse(const Members& members,
                                            const EndorserState& state,
                                            const EndorseRequest& request,
                                            HeadRef* signed_head,
                                            const HeadLimits& limits) {
  BKV_RETURN_IF_ERROR(CheckProposer(
      members, state, request.term(), request.proposer_signature(),
      RequestStatement(members.digest(), request)));
  if (request.term() < state.promised_term()) {
    return absl::FailedPreconditionError(
        absl::StrCat("fenced: this endorser promised term ",
                     state.promised_term(), " to a later owner; term ",
                     request.term(), " may not extend the chain"));
  }
  const std::string& bytes = request.next_table();
  auto next = ParseHeadsString(bytes);
  const HeadRef held = HeldHead(state);
  if (!next.ok() || request.prev_digest().size() != 32 ||
      TooFar(next->seq, held.seq())) {
    return absl::InvalidArgumentError(
        "endorse: malformed table or digest, or a seq too far ahead");
  }
  BKV_RETURN_IF_ERROR(SameEpochsAndCaps(state, *next, limits));
  const std::string digest = DigestBytes(TableDigest(*next));
  const bool successor =
      request.prev_digest() == held.digest() && next->seq > held.seq();
  const bool same = !state.held_table().empty() && digest == held.digest() &&
                    request.prev_digest() == held.prev_digest();
  const Certificate& cert = request.prev_certificate();
  const bool usable = request.has_prev_certificate() &&
                      Usable(members, state, cert, held, request.term());
  // A lagging node catches up from the certificate of the previous head; a
  // new owner re-endorses the certified head itself in its term.
  const bool certified =
      usable && ((cert.head().digest() == request.prev_digest() &&
                  cert.head().seq() < next->seq) ||
                 (cert.head().digest() == digest &&
                  cert.head().prev_digest() == request.prev_digest() &&
                  request.term() > cert.head().term()));
  if (!successor && !same && !certified) {
    return absl::AbortedError(absl::StrCat(
        "not a successor: this endorser holds seq ", held.seq(), " of term ",
        held.term(), "; send the certificate of the head this one extends"));
  }
  EndorserState out = state;
  out.set_promised_term(request.term());
  fresh::v1::PromiseProof* proof = out.mutable_promise_proof();
  proof->set_kind(kEndorseKind);
  proof->set_term(request.term());
  proof->set_prev_digest(request.prev_digest());
  proof->set_next_table_sha256(TableSha256(bytes));
  proof->set_proposer_signature(request.proposer_signature());
  out.set_held_term(request.term());
  out.set_held_prev_digest(request.prev_digest());
  out.set_held_table(bytes);
  signed_head->set_term(request.term());
  signed_head->set_seq(next->seq);
  signed_head->set_prev_digest(request.prev_digest());
  signed_head->set_digest(digest);
  return out;
}

absl::StatusOr<EndorserState> DecidePrepare(
    const Members& members, const EndorserState& state,
    const fresh::v1::PrepareRequest& r) {
  BKV_RETURN_IF_ERROR(
      CheckProposer(members, state, r.term(), r.proposer_signature(),
                    PrepareStatement(members.digest(), r.term())));
  if (r.term() <= state.promised_term()) {
    return absl::FailedPreconditionError(
        absl::StrCat("fenced: this endorser already promised term ",
                     state.promised_term(), "; take over with a higher term"));
  }
  EndorserState out = state;
  out.set_promised_term(r.term());
  fresh::v1::PromiseProof* proof = out.mutable_promise_proof();
  proof->Clear();
  proof->set_kind(kPrepareKind);
  proof->set_term(r.term());
  proof->set_proposer_signature(r.proposer_signature());
  return out;
}

absl::StatusOr<EndorserState> DecideCommit(
    const Members& members, const EndorserState& state,
    const fresh::v1::CommitRequest& request) {
  const Certificate& cert = request.certificate();
  BKV_RETURN_IF_ERROR(VerifyCertificate(members, cert));
  auto table = ParseHeadsString(request.table());
  if (!table.ok() || DigestBytes(TableDigest(*table)) != cert.head().digest()) {
    return absl::InvalidArgumentError(
        "commit: the table is not the one the certificate names");
  }
  EndorserState out = state;
  if (!state.has_newest_certificate() ||
      NotOlder(cert.head(), state.newest_certificate().head())) {
    *out.mutable_newest_certificate() = cert;
    out.set_certified_table(request.table());
  }
  return out;
}

namespace {

// Endorse and Prepare's answer while recovering; the round's error adds how
// many answered.
std::string RecoveringMessage(const Members& members) {
  return absl::StrCat(
      "endorser recovering: waiting for ", members.recovery_quorum(),
      " of the other ", members.all().size() - 1,
      " members to answer its recovery query; it signs and promises nothing "
      "until then: start the other members' vaults (docs/rollback.md "
      "\"Endorser recovery round\")");
}

// A member other than `self` signed this answer to `nonce`, and a
// certificate in it verifies and names its table.
bool ValidAnswer(const Members& members, uint32_t self,
                 const std::string& nonce,
                 const fresh::v1::RecoverResponse& a) {
  if (a.node_id() == self || a.promised_term() == UINT64_MAX ||
      !VerifyBy(members, a.node_id(), a.signature(),
                RecoverAnswerStatement(members.digest(), self, nonce, a))
           .ok()) {
    return false;
  }
  if (!a.has_newest_certificate()) return true;
  auto table = ParseHeadsString(a.certified_table());
  return table.ok() &&
         DigestBytes(TableDigest(*table)) ==
             a.newest_certificate().head().digest() &&
         VerifyCertificate(members, a.newest_certificate()).ok();
}

// Keeps the newer of `out`'s certificate and `cert`.
absl::Status AdoptNewer(EndorserState& out, const Certificate& cert,
                        const std::string& table) {
  const HeadRef& c = cert.head();
  if (out.has_newest_certificate()) {
    const HeadRef& held = out.newest_certificate().head();
    if (held.term() == c.term() && held.seq() == c.seq() &&
        held.digest() != c.digest()) {
      return absl::DataLossError(absl::StrCat(
          "recovery: two certified heads at term ", c.term(), " seq ", c.seq(),
          " differ: a member signed twice; stop and investigate"));
    }
    if (NotOlder(held, c)) return absl::OkStatus();
  }
  *out.mutable_newest_certificate() = cert;
  out.set_certified_table(table);
  return absl::OkStatus();
}

// A held head older than the newest committed one becomes that one: a
// restored (or empty) state never signs a successor of an older head.
void HoldCertified(EndorserState& out) {
  if (!out.has_newest_certificate()) return;
  const HeadRef& c = out.newest_certificate().head();
  if (c.term() > out.promised_term()) {
    out.set_promised_term(c.term());  // the certificate proves it
    out.clear_promise_proof();
  }
  if (NotOlder(HeldHead(out), c)) return;
  out.set_held_term(c.term());
  out.set_held_prev_digest(c.prev_digest());
  out.set_held_table(out.certified_table());
}

// Recovery review finding 1: a heard promise above `base` (the endorser's own
// promise, the adopted certificate's term) counts only with its proposer's
// signed request, and at most kMaxStep above `base`.
absl::Status CheckHeardPromise(const Members& members, uint64_t base,
                               const fresh::v1::RecoverResponse& a) {
  const uint64_t t = a.promised_term();
  if (t <= base) return absl::OkStatus();
  if (TooFar(t, base)) {
    return absl::InvalidArgumentError(
        absl::StrCat("member ", a.node_id(), " answered promise ", t,
                     ", more than 2^32 above ", base, " (not counted)"));
  }
  if (absl::Status s = VerifyPromiseProof(members, t, a.promise_proof());
      !s.ok()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "member ", a.node_id(), " answered promise ", t,
        " without a valid proof: ", s.message(), " (not counted)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<EndorserState> DecideRecovery(
    const Members& members, uint32_t self, const EndorserState& state,
    const std::string& nonce,
    const std::vector<fresh::v1::RecoverResponse>& answers,
    std::vector<std::string>* refused, std::optional<size_t> needed) {
  EndorserState out = state;
  std::vector<const fresh::v1::RecoverResponse*> valid;
  std::set<uint32_t> ids;
  for (const fresh::v1::RecoverResponse& a : answers) {
    if (!ValidAnswer(members, self, nonce, a) ||
        !ids.insert(a.node_id()).second) {
      continue;
    }
    valid.push_back(&a);
    if (a.has_newest_certificate()) {  // self-authenticating
      BKV_RETURN_IF_ERROR(
          AdoptNewer(out, a.newest_certificate(), a.certified_table()));
    }
  }
  const uint64_t base =
      std::max(state.promised_term(), out.newest_certificate().head().term());
  size_t heard = 0;
  for (const fresh::v1::RecoverResponse* a : valid) {
    if (absl::Status s = CheckHeardPromise(members, base, *a); !s.ok()) {
      if (refused != nullptr) refused->emplace_back(s.message());
      continue;
    }
    ++heard;
    if (a->promised_term() > out.promised_term()) {
      out.set_promised_term(a->promised_term());
      *out.mutable_promise_proof() = a->promise_proof();
    }
  }
  if (heard < needed.value_or(members.recovery_quorum())) {
    return absl::UnavailableError(
        absl::StrCat(RecoveringMessage(members), " (", heard, " answered)"));
  }
  HoldCertified(out);
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
  // Quorum review finding 1(c): no silent fresh start from a missing state.
  if (!stored) {
    return absl::FailedPreconditionError(absl::StrCat(
        token->Describe(),
        ": the endorser state is gone: this token has its endorsement key "
        "but no endorser state (a damaged or partly restored token?). "
        "Restore the node's token directory from its latest copy (the "
        "recovery round brings an old copy up to date), or have the "
        "security officer run `bkv-vault cluster reset-state --so-pin-file "
        "FILE` (docs/operations.md \"An endorser whose state is gone\")"));
  }
  EndorserState state;
  if (!state.ParseFromArray(stored->data(), static_cast<int>(stored->size()))) {
    return absl::DataLossError(
        absl::StrCat(token->Describe(), ": the endorser state does not parse"));
  }
  auto e = std::unique_ptr<Endorser>(
      new Endorser(std::move(object), std::move(key), std::move(members),
                   node_id, std::move(state)));
  {
    absl::MutexLock lock(&e->mu_);
    if (e->state_.officer_recovered()) {  // once: cleared before it serves
      EndorserState next = e->state_;
      next.clear_officer_recovered();
      BKV_RETURN_IF_ERROR(e->Store(next));
      e->recovering_ = false;
      e->officer_recovered_ = true;
    }
  }
  return e;
}

absl::Status Endorser::CreateState(std::shared_ptr<hsm::Pkcs11Hsm> token) {
  BKV_ASSIGN_OR_RETURN(auto object,
                       hsm::AnchoredObject::Open(token, hsm::kEndorsedLabel,
                                                 hsm::kEndorsedMacLabel));
  BKV_ASSIGN_OR_RETURN(auto stored, object->Read());
  if (stored) {
    return absl::AlreadyExistsError(absl::StrCat(
        token->Describe(), " already holds an endorser state (kept)"));
  }
  return object->Write({});
}

absl::Status Endorser::InstallState(std::shared_ptr<hsm::Pkcs11Hsm> token,
                                    const EndorserState& state) {
  BKV_ASSIGN_OR_RETURN(auto object,
                       hsm::AnchoredObject::Open(token, hsm::kEndorsedLabel,
                                                 hsm::kEndorsedMacLabel));
  BKV_RETURN_IF_ERROR(object->Read().status());
  const std::string bytes = state.SerializeAsString();
  return object->Write(
      {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
}

bool Endorser::recovering() const {
  absl::MutexLock lock(&mu_);
  return recovering_;
}

absl::StatusOr<fresh::v1::RecoverRequest> Endorser::AskRecovery() const {
  fresh::v1::RecoverRequest r;
  r.set_node_id(node_id_);
  std::string nonce(kNonceSize, '\0');
  randombytes_buf(nonce.data(), nonce.size());
  BKV_ASSIGN_OR_RETURN(
      *r.mutable_signature(),
      Sign(RecoverAskStatement(members_.digest(), node_id_, nonce)));
  r.set_nonce(std::move(nonce));
  return r;
}

absl::StatusOr<fresh::v1::RecoverResponse> Endorser::AnswerRecovery(
    const fresh::v1::RecoverRequest& request) const {
  if (request.node_id() == node_id_) {  // as documented (review finding 8)
    return absl::PermissionDeniedError("recover: a query in this node's name");
  }
  if (request.nonce().size() != kNonceSize) {
    return absl::InvalidArgumentError("recover: malformed query");
  }
  BKV_RETURN_IF_ERROR(
      VerifyBy(members_, request.node_id(), request.signature(),
               RecoverAskStatement(members_.digest(), request.node_id(),
                                   request.nonce())));
  absl::MutexLock answers(&answers_mu_);  // one signature per query
  auto& kept = answers_[request.node_id()];
  for (const auto& [nonce, answer] : kept) {
    if (nonce == request.nonce()) return answer;
  }
  fresh::v1::RecoverResponse a;
  a.set_node_id(node_id_);
  {
    absl::MutexLock lock(&mu_);  // the stored state: nothing heard since
    a.set_promised_term(state_.promised_term());
    if (state_.has_promise_proof()) {
      *a.mutable_promise_proof() = state_.promise_proof();
    }
    if (state_.has_newest_certificate()) {
      *a.mutable_newest_certificate() = state_.newest_certificate();
      a.set_certified_table(state_.certified_table());
    }
  }
  BKV_ASSIGN_OR_RETURN(
      *a.mutable_signature(),
      Sign(RecoverAnswerStatement(members_.digest(), request.node_id(),
                                  request.nonce(), a)));
  ++recover_signatures_;
  kept.emplace_back(request.nonce(), a);
  if (kept.size() > kAnswersKept) kept.pop_front();
  return a;
}

absl::Status Endorser::FinishRecovery(
    const fresh::v1::RecoverRequest& asked,
    const std::vector<fresh::v1::RecoverResponse>& answers,
    std::vector<std::string>* refused) {
  absl::MutexLock lock(&mu_);
  if (!recovering_) return absl::OkStatus();
  BKV_ASSIGN_OR_RETURN(EndorserState next,
                       DecideRecovery(members_, node_id_, state_, asked.nonce(),
                                      answers, refused));
  if (next.SerializeAsString() != state_.SerializeAsString()) {
    BKV_RETURN_IF_ERROR(Store(next));
  }
  recovering_ = false;
  return absl::OkStatus();
}

absl::Status Endorser::AcceptFewer(
    const fresh::v1::RecoverRequest& asked,
    const std::vector<fresh::v1::RecoverResponse>& answers,
    std::vector<std::string>* refused) {
  absl::MutexLock lock(&mu_);
  BKV_ASSIGN_OR_RETURN(EndorserState next,
                       DecideRecovery(members_, node_id_, state_, asked.nonce(),
                                      answers, refused, size_t{1}));
  next.set_officer_recovered(true);
  BKV_RETURN_IF_ERROR(Store(next));
  recovering_ = false;
  return absl::OkStatus();
}

absl::Status Endorser::Store(const EndorserState& next) {
  std::string bytes;
  if (!next.SerializeToString(&bytes)) {
    return absl::InternalError("endorser state does not serialize");
  }
  BKV_RETURN_IF_ERROR(object_->Write(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size())));
  ++state_writes_;
  state_ = next;
  return absl::OkStatus();
}

absl::StatusOr<std::string> Endorser::Sign(
    const std::vector<uint8_t>& m) const {
  BKV_ASSIGN_OR_RETURN(auto sig, key_->Sign(m));
  return std::string(sig.begin(), sig.end());
}

absl::StatusOr<fresh::v1::Refusal> Endorser::Refuse() const {
  fresh::v1::Refusal r;
  r.set_node_id(node_id_);
  r.set_promised_term(state_.promised_term());
  BKV_ASSIGN_OR_RETURN(*r.mutable_signature(),
                       Sign(RefusalStatement(members_.digest(), node_id_,
                                             state_.promised_term())));
  return r;
}

void Endorser::Suspend(const std::string& why) {
  absl::MutexLock lock(&mu_);
  if (suspended_.empty()) suspended_ = why;
}

void Endorser::Resume() {
  absl::MutexLock lock(&mu_);
  suspended_.clear();
}

absl::StatusOr<fresh::v1::EndorseResponse> Endorser::Endorse(
    const EndorseRequest& request) {
  absl::MutexLock lock(&mu_);
  if (!suspended_.empty()) return absl::UnavailableError(suspended_);
  if (recovering_) {
    return absl::UnavailableError(RecoveringMessage(members_));
  }
  HeadRef head;
  absl::StatusOr<EndorserState> next =
      DecideEndorse(members_, state_, request, &head, limits_);
  fresh::v1::EndorseResponse out;
  if (absl::IsFailedPrecondition(next.status())) {
    BKV_ASSIGN_OR_RETURN(*out.mutable_refusal(), Refuse());
    return out;
  }
  if (!next.ok()) return next.status();
  BKV_RETURN_IF_ERROR(Store(*next));
  fresh::v1::Endorsement* e = out.mutable_endorsement();
  e->set_node_id(node_id_);
  BKV_ASSIGN_OR_RETURN(*e->mutable_signature(),
                       Sign(Statement(members_.digest(), node_id_, head)));
  return out;
}

absl::StatusOr<fresh::v1::PrepareResponse> Endorser::Prepare(
    const fresh::v1::PrepareRequest& request) {
  absl::MutexLock lock(&mu_);
  if (!suspended_.empty()) return absl::UnavailableError(suspended_);
  if (recovering_) {
    return absl::UnavailableError(RecoveringMessage(members_));
  }
  absl::StatusOr<EndorserState> next = DecidePrepare(members_, state_, request);
  fresh::v1::PrepareResponse out;
  if (absl::IsFailedPrecondition(next.status())) {
    BKV_ASSIGN_OR_RETURN(*out.mutable_refusal(), Refuse());
    return out;
  }
  if (!next.ok()) return next.status();
  BKV_RETURN_IF_ERROR(Store(*next));
  out.set_granted(true);
  *out.mutable_state() = state_;
  return out;
}

absl::Status Endorser::Commit(const fresh::v1::CommitRequest& request) {
  absl::MutexLock lock(&mu_);
  BKV_ASSIGN_OR_RETURN(EndorserState next,
                       DecideCommit(members_, state_, request));
  // A replayed commit (Commit needs no proposer signature: anyone on the
  // peer port can replay one) changes nothing and writes nothing to the
  // token (review finding 3 of issue 12: HSM wear, and the owner's writes
  // queued behind mu_).
  if (next.SerializeAsString() == state_.SerializeAsString()) {
    return absl::OkStatus();
  }
  return Store(next);
}

absl::Status Endorser::SignRequest(EndorseRequest& request) const {
  BKV_ASSIGN_OR_RETURN(*request.mutable_proposer_signature(),
                       Sign(RequestStatement(members_.digest(), request)));
  return absl::OkStatus();
}

absl::StatusOr<fresh::v1::PrepareRequest> Endorser::SignPrepare(
    uint64_t term) const {
  fresh::v1::PrepareRequest r;
  r.set_term(term);
  BKV_ASSIGN_OR_RETURN(*r.mutable_proposer_signature(),
                       Sign(PrepareStatement(members_.digest(), term)));
  return r;
}

EndorserState Endorser::State() const {
  absl::MutexLock lock(&mu_);
  return state_;
}

}  // namespace bkv::freshness
