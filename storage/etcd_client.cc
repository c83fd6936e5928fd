#include "storage/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <map>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bkv::storage {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

// Errors another member (or the same one after an election) may not give:
// transport failures, deadlines, leader changes, overload.
// etcd's NOSPACE alarm: every write fails until an operator acts.
bool IsOutOfSpace(const grpc::Status& s) {
  return absl::StrContains(s.error_message(), "database space exceeded");
}

bool IsRetryable(const grpc::Status& s) {
  if (IsOutOfSpace(s)) return false;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::CANCELLED:
    // etcd's own "context deadline exceeded" when our deadline ran out
    // while it waited for the Raft majority.
    case grpc::StatusCode::UNKNOWN:
      return true;
    default:
      return false;
  }
}

// Names the likely cause of a member's failure for the operator.
std::string Explain(const std::string& endpoint, const grpc::Status& s,
                    bool tls) {
  const std::string& m = s.error_message();
  // The connection closed while connecting: the member refused our TLS
  // client certificate, or the two sides disagree about TLS at all.
  const bool dropped = absl::StrContains(m, "failed to connect") &&
                       (absl::StrContains(m, "Endpoint read failed") ||
                        absl::StrContains(m, "Socket closed") ||
                        absl::StrContains(m, "Connection reset by peer"));
  std::string hint;
  if (dropped && tls) {
    hint =
        "the member closed the connection during the TLS handshake (it "
        "does not accept this client's certificate: check cert_file and "
        "key_file are signed by the CA etcd trusts): ";
  } else if (dropped) {
    hint =
        "the member closed the plaintext connection (does it serve TLS? "
        "then set ca_file, cert_file, key_file): ";
  } else if (absl::StrContains(m, "Ssl") || absl::StrContains(m, "SSL") ||
             absl::StrContains(m, "certificate") ||
             absl::StrContains(m, "TLS")) {
    hint =
        "TLS handshake failed (check ca_file, cert_file, key_file and "
        "that the member's certificate names this address): ";
  } else if (absl::StrContains(m, "onnection refused")) {
    hint = "nothing listens there (wrong endpoint or member down): ";
  } else if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    hint =
        "no answer before the deadline (member frozen, partitioned or "
        "without quorum): ";
  } else if (s.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    hint = "not an etcd v3 member: ";
  }
  return absl::StrCat(endpoint, ": ", hint, m);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EtcdClient>> EtcdClient::Create(
    EtcdClientOptions options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd store needs at least one endpoint");
  }
  if (!options.insecure && options.ca_pem.empty()) {
    return absl::InvalidArgumentError(
        "etcd store needs TLS: set ca_file (and cert_file, key_file for "
        "client-certificate auth), or insecure for a loopback test cluster");
  }
  if (options.cert_pem.empty() != options.key_pem.empty()) {
    return absl::InvalidArgumentError(
        "etcd store: cert_file and key_file go together");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (options.insecure) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_pem;
    ssl.pem_cert_chain = options.cert_pem;
    ssl.pem_private_key = options.key_pem;
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // A member back after a crash or freeze is used again within a second.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1'000);
  std::unique_ptr<EtcdClient> client(new EtcdClient(std::move(options)));
  for (const std::string& endpoint : client->options_.endpoints) {
    auto channel = grpc::CreateCustomChannel(endpoint, creds, args);
    client->members_.push_back({endpoint, etcdserverpb::KV::NewStub(channel),
                                etcdserverpb::Maintenance::NewStub(channel),
                                etcdserverpb::Lease::NewStub(channel)});
  }
  // The key material is in the channel credentials now; drop our copy.
  client->options_.key_pem.assign(client->options_.key_pem.size(), '\0');
  client->options_.key_pem.clear();
  return client;
}

template <typename Call>
absl::Status EtcdClient::WithFailover(const char* op, Call call, CallInfo* info,
                                      absl::Duration op_timeout) {
  const absl::Time give_up = absl::Now() + op_timeout;
  std::map<std::string, std::string> last_error;  // by endpoint
  for (int attempt = 0;; ++attempt) {
    const size_t n = members_.size();
    const size_t first = preferred_.load();
    Member& m = members_[first % n];
    const absl::Duration left = give_up - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() +
                                        std::min(options_.call_timeout, left)));
    ++round_trips_;
    const grpc::Status s = call(m, &ctx);
    if (s.ok()) return absl::OkStatus();
    if (IsOutOfSpace(s)) {
      // etcd applies a write, then reports NOSPACE if it crossed the quota.
      if (info != nullptr) info->ambiguous = true;
      return absl::ResourceExhaustedError(absl::StrCat(
          "etcd cluster is out of space (", m.endpoint, ": ", s.error_message(),
          "): compact and defragment its members and disarm the NOSPACE "
          "alarm, or raise --quota-backend-bytes; reads keep working"));
    }
    if (!IsRetryable(s)) {
      return absl::Status(
          FromGrpc(s).code(),
          absl::StrCat("etcd ", op, " refused by ",
                       Explain(m.endpoint, s, !options_.insecure)));
    }
    if (info != nullptr) info->ambiguous = true;
    last_error[m.endpoint] = Explain(m.endpoint, s, !options_.insecure);
    // Move on to the next member, unless another thread already did.
    size_t expected = first;
    preferred_.compare_exchange_strong(expected, (first + 1) % n);
    // After a full round without an answer, wait a little (an election
    // takes about one election timeout) before the next round.
    if ((attempt + 1) % n == 0) {
      const absl::Duration pause =
          std::min(absl::Milliseconds(50) * ((attempt + 1) / n),
                   absl::Milliseconds(500));
      std::this_thread::sleep_for(
          absl::ToChronoMilliseconds(std::min(pause, give_up - absl::Now())));
    }
  }
  std::vector<std::string> errors;
  for (const auto& [endpoint, error] : last_error) errors.push_back(error);
  return absl::UnavailableError(absl::StrCat(
      "etcd cluster [", absl::StrJoin(options_.endpoints, ", "),
      "] did not complete ", op, " within ", absl::FormatDuration(op_timeout),
      "; check that a majority of its members is up and reachable (",
      errors.empty() ? "no attempt made" : absl::StrJoin(errors, "; "), ")"));
}

absl::Status EtcdClient::Range(const etcdserverpb::RangeRequest& req,
                               etcdserverpb::RangeResponse* resp,
                               CallInfo* info) {
  return Range(req, resp, info, options_.op_timeout);
}

absl::Status EtcdClient::Range(const etcdserverpb::RangeRequest& req,
                               etcdserverpb::RangeResponse* resp,
                               CallInfo* info, absl::Duration timeout) {
  return WithFailover(
      "Range",
      [&](Member& m, grpc::ClientContext* ctx) {
        return m.kv->Range(ctx, req, resp);
      },
      info, timeout);
}

absl::Status EtcdClient::Txn(const etcdserverpb::TxnRequest& req,
                             etcdserverpb::TxnResponse* resp, CallInfo* info) {
  return Txn(req, resp, info, options_.op_timeout);
}

absl::Status EtcdClient::Txn(const etcdserverpb::TxnRequest& req,
                             etcdserverpb::TxnResponse* resp, CallInfo* info,
                             absl::Duration timeout) {
  return WithFailover(
      "Txn",
      [&](Member& m, grpc::ClientContext* ctx) {
        return m.kv->Txn(ctx, req, resp);
      },
      info, timeout);
}

absl::Status EtcdClient::Compact(const etcdserverpb::CompactionRequest& req,
                                 etcdserverpb::CompactionResponse* resp,
                                 CallInfo* info) {
  return WithFailover(
      "Compact",
      [&](Member& m, grpc::ClientContext* ctx) {
        return m.kv->Compact(ctx, req, resp);
      },
      info);
}

absl::StatusOr<etcdserverpb::LeaseGrantResponse> EtcdClient::LeaseGrant(
    int64_t ttl_s, absl::Duration timeout) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttl_s);
  etcdserverpb::LeaseGrantResponse resp;
  absl::Status s =
      LeaseCall("LeaseGrant", &etcdserverpb::Lease::Stub::LeaseGrant, req,
                &resp, timeout);
  if (!s.ok()) return s;
  if (!resp.error().empty() || resp.id() == 0 || resp.ttl() <= 0) {
    return absl::UnavailableError(
        absl::StrCat("etcd refused a lease: ", resp.error()));
  }
  return resp;
}

absl::StatusOr<etcdserverpb::LeaseKeepAliveResponse> EtcdClient::LeaseKeepAlive(
    int64_t id, absl::Duration timeout) {
  etcdserverpb::LeaseKeepAliveRequest req;
  req.set_id(id);
  etcdserverpb::LeaseKeepAliveResponse resp;
  absl::Status s = WithFailover(
      "LeaseKeepAlive",
      [&](Member& m, grpc::ClientContext* ctx) {
        auto stream = m.lease->LeaseKeepAlive(ctx);
        const bool answered = stream->Write(req) && stream->Read(&resp);
        stream->WritesDone();
        const grpc::Status end = stream->Finish();
        if (!end.ok() || answered) return end;
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                            "the keep-alive stream closed without an answer");
      },
      nullptr, timeout);
  if (!s.ok()) return s;
  return resp;
}

absl::Status EtcdClient::LeaseRevoke(int64_t id, absl::Duration timeout) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(id);
  etcdserverpb::LeaseRevokeResponse resp;
  absl::Status s =
      LeaseCall("LeaseRevoke", &etcdserverpb::Lease::Stub::LeaseRevoke, req,
                &resp, timeout);
  // Expired already, or a resend after the first revoked it.
  if (absl::IsNotFound(s) ||
      absl::StrContains(s.message(), "lease not found")) {
    return absl::OkStatus();
  }
  return s;
}

absl::StatusOr<uint64_t> EtcdClient::Probe() {
  std::map<uint64_t, std::vector<std::string>> clusters;  // id -> endpoints
  std::vector<std::string> errors;
  for (Member& m : members_) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
    etcdserverpb::StatusRequest req;
    etcdserverpb::StatusResponse resp;
    ++round_trips_;
    const grpc::Status s = m.maintenance->Status(&ctx, req, &resp);
    if (s.ok()) {
      clusters[resp.header().cluster_id()].push_back(m.endpoint);
    } else {
      errors.push_back(Explain(m.endpoint, s, !options_.insecure));
    }
  }
  if (clusters.size() > 1) {
    std::vector<std::string> parts;
    for (const auto& [id, eps] : clusters) {
      parts.push_back(absl::StrCat(absl::StrJoin(eps, ", "), " in cluster ",
                                   absl::Hex(id)));
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "etcd endpoints belong to different clusters (",
        absl::StrJoin(parts, "; "), "): list the members of one cluster only"));
  }
  if (clusters.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "no etcd endpoint answered (", absl::StrJoin(errors, "; "), ")"));
  }
  return clusters.begin()->first;
}

}  // namespace bkv::storage
