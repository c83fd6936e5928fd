#include "server/health_command.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace bkv::server {
namespace {

// grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING.
constexpr uint32_t kServing = 1;

struct HealthFlags {
  std::string addr = "127.0.0.1:50051";
  std::string ca_file;
  std::string server_name;
  int timeout_ms = 3000;
};

// Field 1 (status, varint) of a HealthCheckResponse; 0 (UNKNOWN) if absent.
bool ParseStatus(const grpc::ByteBuffer& buf, uint32_t& status) {
  grpc::Slice slice;
  if (!buf.DumpToSingleSlice(&slice).ok()) return false;
  google::protobuf::io::CodedInputStream in(slice.begin(), slice.size());
  status = 0;
  while (uint32_t tag = in.ReadTag()) {
    if (tag == (1 << 3 | 0)) {
      if (!in.ReadVarint32(&status)) return false;
    } else if (!google::protobuf::internal::WireFormatLite::SkipField(&in,
                                                                      tag)) {
      return false;
    }
  }
  return true;
}

// Plaintext, or TLS trusting --ca; nullptr (reason on `err`) if the CA file
// cannot be read.
std::shared_ptr<grpc::Channel> MakeChannel(const HealthFlags& f,
                                           std::ostream& err) {
  std::shared_ptr<grpc::ChannelCredentials> creds =
      grpc::InsecureChannelCredentials();
  grpc::ChannelArguments channel_args;
  if (!f.ca_file.empty()) {
    std::ifstream in(f.ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in) {
      err << "bkv-vault health: cannot read " << f.ca_file << "\n";
      return nullptr;
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = pem.str();
    creds = grpc::SslCredentials(ssl);
    if (!f.server_name.empty()) {
      channel_args.SetSslTargetNameOverride(f.server_name);
    }
  }
  return grpc::CreateCustomChannel(f.addr, creds, channel_args);
}

// grpc.health.v1.Health/Check for the whole server (service ""), without
// the generated stub: Debian ships no health.proto.
grpc::Status Check(std::shared_ptr<grpc::Channel> channel, int timeout_ms,
                   grpc::ByteBuffer& response) {
  grpc::GenericStub stub(std::move(channel));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(timeout_ms));
  grpc::Slice empty;  // an empty HealthCheckRequest
  grpc::ByteBuffer request(&empty, 1);
  grpc::Status st;
  absl::Notification done;  // the deadline bounds the wait
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   st = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return st;
}

int RunHealth(const HealthFlags& f, std::ostream& out, std::ostream& err) {
  std::shared_ptr<grpc::Channel> channel = MakeChannel(f, err);
  if (channel == nullptr) return 1;
  grpc::ByteBuffer response;
  if (grpc::Status st = Check(std::move(channel), f.timeout_ms, response);
      !st.ok()) {
    err << "bkv-vault health: " << f.addr << ": " << st.error_message() << "\n";
    return 1;
  }
  uint32_t status = 0;
  if (!ParseStatus(response, status)) {
    err << "bkv-vault health: malformed health response\n";
    return 1;
  }
  if (status != kServing) {
    out << "not serving (status " << status << ")\n";
    return 1;
  }
  out << "serving\n";
  return kExitOk;
}

}  // namespace

void RegisterHealthCommand(VaultCli& cli) {
  auto f = std::make_shared<HealthFlags>();
  CLI::App* health = cli.Add(
      cli.root(), "health", "is a running vault serving?",
      "Asks the vault's gRPC health service whether it is serving. Exit "
      "codes: 0 serving, 1 not serving or unreachable, 2 usage error.",
      [f](Io io) { return RunHealth(*f, io.out, io.err); });
  cli.Value(health, "--addr", f->addr, "HOST:PORT",
            "the vault (default 127.0.0.1:50051)");
  cli.Value(health, "--ca", f->ca_file, "PEM",
            "use TLS, trusting these PEM roots");
  cli.Value(health, "--server-name", f->server_name, "NAME",
            "the name its certificate holds (with --ca)");
  health
      ->add_option("--timeout-ms", f->timeout_ms,
                   "how long to wait (default 3000)")
      ->type_name("N")
      ->check(CLI::PositiveNumber);
}

}  // namespace bkv::server
