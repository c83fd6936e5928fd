#include "freshness/member_change.h"

#include <sodium.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "crypto/hex.h"
#include "crypto/status_macros.h"
#include "freshness/head_table.h"
#include "freshness/reanchor.h"
#include "hsm/endorsement_key.h"

namespace bkv::freshness {
namespace {

using fresh::v1::Certificate;
using fresh::v1::HandOver;

constexpr std::string_view kHandOverContext = "bkv.fresh.handover.v1";

void PutBytes(std::vector<uint8_t>& out, std::string_view b) {
  for (char c : b) out.push_back(static_cast<uint8_t>(c));
}

// The certificate's table is the one it certifies.
absl::Status CheckTable(const Certificate& c, const std::string& table) {
  auto t = ParseHeadsString(table);
  if (!t.ok() || DigestBytes(TableDigest(*t)) != c.head().digest()) {
    return absl::InvalidArgumentError(
        "a hand-over's table is not the one its certificate certifies");
  }
  return absl::OkStatus();
}

// One hand-over: the old list `from`, handed to `to`, signed by its member.
absl::Status CheckHandOver(const Members& from, const Members& to,
                           const HandOver& h) {
  BKV_ASSIGN_OR_RETURN(Members old, FormedList(h.from()));
  if (old.digest() != from.digest() ||
      h.to_list_digest() != DigestBytes(to.list_digest())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the hand-over of node ", h.node_id(),
        " is from another old list or to another new list than the first "
        "one's: give the hand-overs of one replacement only"));
  }
  const Member* m = from.Find(h.node_id());
  hsm::EndorsementKey::Signature sig;
  if (m == nullptr || h.signature().size() != sig.size()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "hand-over of node ", h.node_id(), ": not a member of the old list"));
  }
  std::copy(h.signature().begin(), h.signature().end(), sig.begin());
  if (!hsm::VerifyEndorsement(m->key, HandOverStatement(from.digest(), h),
                              sig)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "hand-over of node ", h.node_id(), ": its signature does not verify"));
  }
  if (!h.has_newest_certificate()) return absl::OkStatus();
  BKV_RETURN_IF_ERROR(VerifyCertificate(from, h.newest_certificate()));
  return CheckTable(h.newest_certificate(), h.certified_table());
}

// The newest certificate of `hs`; DataLoss for a tie with another digest.
absl::StatusOr<const HandOver*> Newest(const std::vector<HandOver>& hs) {
  const HandOver* best = nullptr;
  for (const HandOver& h : hs) {
    if (!h.has_newest_certificate()) continue;
    const auto& c = h.newest_certificate().head();
    if (best == nullptr) {
      best = &h;
      continue;
    }
    const auto& b = best->newest_certificate().head();
    if (c.term() == b.term() && c.seq() == b.seq() &&
        c.digest() != b.digest()) {
      return absl::DataLossError(absl::StrCat(
          "two certificates at term ", c.term(), " seq ", c.seq(),
          " with different tables: a member signed twice; investigate before "
          "forming anything (docs/operations.md \"Fork evidence\")"));
    }
    if (std::make_pair(c.term(), c.seq()) > std::make_pair(b.term(), b.seq())) {
      best = &h;
    }
  }
  return best;
}

}  // namespace

absl::StatusOr<Members> FormedList(const fresh::v1::FormedMembers& f) {
  BKV_ASSIGN_OR_RETURN(Members list, Members::Parse(f.members()));
  if (!f.has_base()) return list;
  Certificate base;
  *base.mutable_head() = f.base();
  BKV_RETURN_IF_ERROR(CheckTable(base, f.base_table()));
  return list.WithBase(f.base());
}

std::vector<uint8_t> HandOverStatement(const Digest& from, const HandOver& h) {
  std::vector<uint8_t> out;
  PutBytes(out, kHandOverContext);
  PutBytes(out, DigestBytes(from));
  PutBytes(out, h.to_list_digest());
  PutBigEndian(out, h.node_id(), 4);
  PutBigEndian(out, h.promised_term(), 8);
  const auto& c = h.newest_certificate().head();
  PutBigEndian(out, c.term(), 8);
  PutBigEndian(out, c.seq(), 8);
  const std::string zero(32, '\0');
  PutBytes(out, c.prev_digest().empty() ? zero : c.prev_digest());
  PutBytes(out, c.digest().empty() ? zero : c.digest());
  return out;
}

size_t CarryBound(const Members& from) {
  return from.all().size() - from.quorum() + 2;
}

absl::StatusOr<size_t> ExpectedHandOvers(const Members& from, const Members& to,
                                         const std::vector<uint32_t>& leaving) {
  size_t n = 0;
  for (const Member& m : from.all()) {
    const Member* now = to.Find(m.id);
    if (now != nullptr && now->key == m.key) ++n;
  }
  std::set<uint32_t> named;
  for (uint32_t id : leaving) {
    const Member* old = from.Find(id);
    const Member* now = to.Find(id);
    if (old == nullptr || (now != nullptr && now->key == old->key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--leaving-exports: node ", id,
          " is not a member leaving the old list (a survivor hands over "
          "anyway)"));
    }
    if (named.insert(id).second) ++n;
  }
  return n;
}

namespace {

// The carry bound, unless the officer accepts fewer (cform review finding
// 1); a majority of the old list is checked before.
absl::Status CheckBound(const Members& from, size_t have, bool accept_fewer) {
  if (have < CarryBound(from) && !accept_fewer) {
    return absl::FailedPreconditionError(absl::StrCat(
        "have the hand-overs of ", have, " members of the old list, need ",
        CarryBound(from),
        " (N - q + 2) so that one restored or lying token is "
        "outweighed: with fewer the newest head is not proven, and the carry "
        "is a re-anchor of every shard that caps every account at K attempts "
        "(--accept-fewer with `rollback reanchor --carry ... --accept-fewer "
        "--decision OUT`; docs/operations.md \"Replacing a node\")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Carry> DecideCarry(const Members& to,
                                  const std::vector<HandOver>& hand_overs,
                                  bool accept_fewer) {
  if (hand_overs.empty()) {
    return absl::InvalidArgumentError("no hand-over given (--carry)");
  }
  BKV_ASSIGN_OR_RETURN(Members from, FormedList(hand_overs[0].from()));
  std::set<uint32_t> nodes;
  for (const HandOver& h : hand_overs) {
    BKV_RETURN_IF_ERROR(CheckHandOver(from, to, h));
    nodes.insert(h.node_id());
  }
  if (nodes.size() < from.quorum()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "need the hand-overs of a majority of the old list (", from.quorum(),
        " of ", from.all().size(), "), have ", nodes.size(),
        " distinct: give every survivor's; if a majority of the old tokens is "
        "lost, the chain is lost: re-anchor (docs/operations.md)"));
  }
  // Every survivor's hand-over (review finding 7): all new-list tokens get
  // one input, and a lagging or restored survivor is outweighed when it can be.
  for (const Member& m : to.all()) {
    const Member* old = from.Find(m.id);
    if (old != nullptr && old->key == m.key && !nodes.contains(m.id)) {
      return absl::FailedPreconditionError(
          absl::StrCat("the hand-over of node ", m.id,
                       " (in both lists) is missing: give "
                       "every survivor's (`cluster form --export` on it)"));
    }
  }
  BKV_RETURN_IF_ERROR(CheckBound(from, nodes.size(), accept_fewer));
  BKV_ASSIGN_OR_RETURN(const HandOver* newest, Newest(hand_overs));
  Carry out;
  out.hand_overs = nodes.size();
  out.bound = CarryBound(from);
  out.below_bound = out.hand_overs < out.bound;
  out.formed.set_members(to.Encode());
  out.formed.set_from_digest(DigestBytes(from.digest()));
  if (newest == nullptr) return out;  // nothing was ever committed
  const Certificate& cert = newest->newest_certificate();
  *out.formed.mutable_base() = cert.head();
  out.formed.set_base_table(newest->certified_table());
  fresh::v1::EndorserState& s = out.state;
  s.set_promised_term(cert.head().term());
  s.set_held_term(cert.head().term());
  s.set_held_prev_digest(cert.head().prev_digest());
  s.set_held_table(newest->certified_table());
  *s.mutable_newest_certificate()->mutable_head() = cert.head();
  s.set_certified_table(newest->certified_table());
  return out;
}

namespace {

// One shard of a decision against the shard it re-anchors (docs/rollback.md
// "The lifetime budget").
absl::Status CheckShard(uint32_t i, const ShardHead& was, const ShardHead& now,
                        uint32_t max_attempts, uint32_t ceremonies) {
  // A kept shard keeps the certified root: only a re-anchor (epoch + 1,
  // capped) may choose another (review finding 4).
  if (now.epoch == was.epoch && now.cap == was.cap &&
      now.ceremonies_left == was.ceremonies_left && now.root == was.root) {
    return absl::OkStatus();
  }
  if (now.epoch == was.epoch) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the decision's shard ", i, " keeps epoch ", now.epoch,
        " but changes its cap, ceremonies left or root: only a re-anchored "
        "shard (epoch + 1) may; was the decision changed on the way?"));
  }
  const ShardHead most = ReanchoredHead(was, max_attempts, ceremonies);
  // Budget review finding 5: cap 0 only for a spent shard (no decision
  // takes every attempt from a shard that has a ceremony left).
  const uint32_t least = most.cap == 0 ? 0 : 1;
  if (now.epoch == most.epoch && now.cap <= most.cap && now.cap >= least &&
      now.ceremonies_left == most.ceremonies_left) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "the decision's shard ", i, " has epoch ", now.epoch, " cap ", now.cap,
      " ceremonies left ", now.ceremonies_left, "; after epoch ", was.epoch,
      " with ", was.ceremonies_left,
      " left a re-anchor gives epoch + 1, a cap of ", least, " to ", most.cap,
      " (--max-attempts ", max_attempts, ") and ", most.ceremonies_left,
      " left: a decision can't spare or raise the lifetime budget, nor take "
      "every attempt from a shard that has a ceremony left"));
}

// A decision without a carried base (a quorum genesis over records) gives
// every shard its first re-anchor from this node's own budget B: the
// members' B must agree, and no genesis leaves a shard no attempt nor
// fewer ceremonies than B gives (budget review finding 5).
absl::Status CheckGenesisShard(const ShardHead& now, uint32_t max_attempts,
                               uint32_t ceremonies) {
  if (now.epoch == 1 && now.cap >= 1 && now.cap <= max_attempts &&
      ceremonies >= 1 && now.ceremonies_left == ceremonies - 1) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "a decision without a carried head re-anchors every shard once: epoch "
      "1, a cap of 1 to ",
      max_attempts, " and ", ceremonies,
      " - 1 ceremonies left (this node's [freshness] reanchor_budget: every "
      "member must have the same); this one has epoch ",
      now.epoch, " cap ", now.cap, " left ", now.ceremonies_left));
}

}  // namespace

absl::Status ApplyDecision(const std::string& decided, uint32_t max_attempts,
                           Carry& carry, uint32_t ceremonies) {
  BKV_ASSIGN_OR_RETURN(HeadTable next, ParseHeadsString(decided));
  const bool based = carry.formed.has_base();
  HeadTable was;
  if (based) {
    BKV_ASSIGN_OR_RETURN(was, ParseHeadsString(carry.formed.base_table()));
  } else {
    was.shards.resize(next.shards.size());  // genesis: every shard chosen
  }
  if (next.shards.size() != was.shards.size() || next.seq <= was.seq) {
    return absl::PermissionDeniedError(
        "the decision is not a re-anchor of the carried head (another shard "
        "count, or no higher seq)");
  }
  for (uint32_t i = 0; i < next.shards.size(); ++i) {
    const ShardHead& now = next.shards[i];
    if (!based) {
      BKV_RETURN_IF_ERROR(CheckGenesisShard(now, max_attempts, ceremonies));
      continue;
    }
    // Below the carry bound no record is proven fresh (cform finding 1).
    if (carry.below_bound && now.epoch != was.shards[i].epoch + 1) {
      return absl::PermissionDeniedError(absl::StrCat(
          "below the carry bound the decision must re-anchor every shard; "
          "shard ",
          i,
          " is kept: make it with `rollback reanchor --carry "
          "... --accept-fewer`"));
    }
    BKV_RETURN_IF_ERROR(
        CheckShard(i, was.shards[i], now, max_attempts, ceremonies));
  }
  fresh::v1::HeadRef base;
  base.set_term(carry.state.promised_term());
  base.set_seq(next.seq);
  base.set_prev_digest(based ? carry.formed.base().digest()
                             : std::string(32, '\0'));
  base.set_digest(DigestBytes(TableDigest(next)));
  *carry.formed.mutable_base() = base;
  carry.formed.set_base_table(decided);
  fresh::v1::EndorserState& s = carry.state;
  s.set_promised_term(base.term());
  s.set_held_term(base.term());
  s.set_held_prev_digest(base.prev_digest());
  s.set_held_table(decided);
  s.mutable_newest_certificate()->Clear();
  *s.mutable_newest_certificate()->mutable_head() = base;
  s.set_certified_table(decided);
  return absl::OkStatus();
}

std::vector<uint8_t> DecisionStatement(const Digest& list,
                                       const fresh::v1::ReanchorDecision& d) {
  std::vector<uint8_t> out;
  PutBytes(out, "bkv.fresh.decision.v1");
  PutBytes(out, DigestBytes(list));
  PutBigEndian(out, d.node_id(), 4);
  PutBytes(out, d.carried_digest().empty() ? std::string(32, '\0')
                                           : d.carried_digest());
  Digest t;
  crypto_hash_sha256(t.data(),
                     reinterpret_cast<const uint8_t*>(d.table().data()),
                     d.table().size());
  PutBytes(out, DigestBytes(t));
  return out;
}

absl::Status ApplySignedDecision(const Members& to,
                                 const fresh::v1::ReanchorDecision& d,
                                 uint32_t max_attempts, Carry& carry,
                                 uint32_t ceremonies) {
  const Member* m = to.Find(d.node_id());
  hsm::EndorsementKey::Signature sig;
  if (m == nullptr || d.signature().size() != sig.size() ||
      (std::copy(d.signature().begin(), d.signature().end(), sig.begin()),
       !hsm::VerifyEndorsement(m->key, DecisionStatement(to.list_digest(), d),
                               sig))) {
    return absl::PermissionDeniedError(
        "the decision is not signed by a member of this list (`rollback "
        "reanchor --carry` writes it): was it changed on the way?");
  }
  const std::string carried =
      carry.formed.has_base() ? carry.formed.base().digest() : "";
  if (d.carried_digest() != carried) {
    return absl::PermissionDeniedError(
        "the decision was made over another carried head than these "
        "hand-overs give: use the hand-overs it was made with");
  }
  return ApplyDecision(d.table(), max_attempts, carry, ceremonies);
}

}  // namespace bkv::freshness
