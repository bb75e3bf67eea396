// `tierserve health`: one grpc.health.v1.Health/Check call. The two messages
// of the health protocol are tiny (a string service name in field 1; a
// ServingStatus enum in field 1), so they are written and read here with
// protobuf's wire-format streams over a generic stub: libgrpc++ installs no
// generated health client, and the daemon's own health service is built in.
#include "server/health_command.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <iostream>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "runtime/base/status_macros.h"
#include "server/common_flags.h"
#include "server/small_file.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "gRPC address host:port of the daemon to ask.");
ABSL_FLAG(std::string, service, "",
          "Service whose health to ask: empty for the whole server (SERVING once every model is "
          "loaded, NOT_SERVING while loading or draining), tierserve.v1.Generation or "
          "inference.GRPCInferenceService.");
ABSL_FLAG(int32_t, timeout_seconds, 5, "Deadline of the call in seconds (> 0), connecting included.");
ABSL_FLAG(std::string, tls_ca_file, "",
          "Speak TLS, trusting the server certificates this PEM CA file signs (server.tls).");
ABSL_FLAG(std::string, tls_cert_file, "",
          "With --tls_ca_file: the client certificate (PEM) for a mutual-TLS daemon.");
ABSL_FLAG(std::string, tls_key_file, "", "With --tls_cert_file: its private key (PEM).");
ABSL_FLAG(std::string, api_key_file, "",
          "A file whose first line is the API key to send (when health is not in "
          "server.open_services).");

namespace tierserve {
namespace {

constexpr char kCheckMethod[] = "/grpc.health.v1.Health/Check";

// grpc.health.v1.HealthCheckResponse.ServingStatus.
const char* ServingStatusName(uint64_t status) {
  switch (status) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return nullptr;
  }
}

// HealthCheckRequest { string service = 1; }: an empty name is the empty message.
std::string EncodeRequest(const std::string& service) {
  std::string out;
  if (service.empty()) return out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteTag((1 << 3) | 2);  // field 1, length-delimited
  coded.WriteVarint32(static_cast<uint32_t>(service.size()));
  coded.WriteString(service);
  coded.Trim();
  return out;
}

// HealthCheckResponse { ServingStatus status = 1; }: the status (0 when the
// field is absent, as proto3 omits the default), or nullopt if the bytes are
// not a well-formed message. Unknown fields are skipped.
std::optional<uint64_t> DecodeStatus(const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  uint64_t status = 0;
  while (const uint32_t tag = in.ReadTag()) {
    const uint32_t field = tag >> 3;
    uint64_t varint = 0;
    uint32_t length = 0;
    switch (tag & 7) {
      case 0:
        if (!in.ReadVarint64(&varint)) return std::nullopt;
        if (field == 1) status = varint;
        break;
      case 1:
        if (!in.Skip(8)) return std::nullopt;
        break;
      case 2:
        if (!in.ReadVarint32(&length) || !in.Skip(static_cast<int>(length))) return std::nullopt;
        break;
      case 5:
        if (!in.Skip(4)) return std::nullopt;
        break;
      default:
        return std::nullopt;
    }
  }
  if (!in.ConsumedEntireMessage()) return std::nullopt;  // a zero tag inside the bytes
  return status;
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

constexpr int64_t kMaxProbeFileBytes = 1 << 20;

// Plaintext, or TLS from --tls_ca_file (and a client certificate).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ProbeCredentials() {
  const std::string ca = absl::GetFlag(FLAGS_tls_ca_file);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key = absl::GetFlag(FLAGS_tls_key_file);
  if (ca.empty()) {
    if (!cert.empty() || !key.empty()) {
      return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file need --tls_ca_file");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  grpc::SslCredentialsOptions options;
  TS_ASSIGN_OR_RETURN(options.pem_root_certs,
                      ReadSmallFile(ca, kMaxProbeFileBytes, "--tls_ca_file: ",
                                    SmallFileKind{"CA certificate", "a PEM CA certificate"}));
  if (!cert.empty()) {
    TS_ASSIGN_OR_RETURN(options.pem_cert_chain,
                        ReadSmallFile(cert, kMaxProbeFileBytes, "--tls_cert_file: ",
                                      SmallFileKind{"certificate", "a PEM certificate"}));
    TS_ASSIGN_OR_RETURN(options.pem_private_key,
                        ReadSmallFile(key, kMaxProbeFileBytes, "--tls_key_file: ",
                                      SmallFileKind{"private key", "a PEM private key"}));
  }
  return grpc::SslCredentials(options);
}

// The first line of --api_key_file, or "".
absl::StatusOr<std::string> ProbeApiKey() {
  const std::string path = absl::GetFlag(FLAGS_api_key_file);
  if (path.empty()) return std::string();
  TS_ASSIGN_OR_RETURN(std::string text,
                      ReadSmallFile(path, kMaxProbeFileBytes, "--api_key_file: ",
                                    SmallFileKind{"API key file", "a file holding an API key"}));
  std::string key(absl::StripAsciiWhitespace(text.substr(0, text.find('\n'))));
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("--api_key_file: ", path, ": the first line is empty"));
  return key;
}

}  // namespace

int RunHealthCommand(const std::vector<std::string>& args) {
  ParseCommandFlags("health",
                    "tierserve health [--address host:port] [--service NAME] [--timeout_seconds N]\n"
                    "                 [--tls_ca_file F [--tls_cert_file F --tls_key_file F]] [--api_key_file F]\n"
                    "Calls grpc.health.v1.Health/Check on a running daemon: exits 0 when it answers\n"
                    "SERVING, 1 otherwise, saying what it got on stderr.",
                    args);
  const std::string address = absl::GetFlag(FLAGS_address);
  const std::string service = absl::GetFlag(FLAGS_service);
  const int32_t timeout = absl::GetFlag(FLAGS_timeout_seconds);
  const std::string who = service.empty() ? address : absl::StrCat(address, " service ", service);
  if (address.empty() || timeout <= 0) {
    std::cerr << "tierserve health: --address must be host:port and --timeout_seconds > 0\n";
    return 1;
  }

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = ProbeCredentials();
  absl::StatusOr<std::string> api_key = ProbeApiKey();
  for (const absl::Status& s : {credentials.status(), api_key.status()}) {
    if (!s.ok()) {
      std::cerr << "tierserve health: " << s.message() << "\n";
      return 1;
    }
  }
  // A probe talks to the address it is given: no HTTP proxy from the environment.
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(address, *credentials, channel_args);
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  if (!api_key->empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", *api_key));
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout));
  const std::string request_bytes = EncodeRequest(service);
  grpc::Slice slice(request_bytes);
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, kCheckMethod, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status status = done.get_future().get();

  if (!status.ok()) {
    std::cerr << "tierserve health: " << who << ": "
              << absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())) << ": "
              << status.error_message() << "\n";
    return 1;
  }
  const std::optional<uint64_t> serving = DecodeStatus(Flatten(response));
  const char* name = serving.has_value() ? ServingStatusName(*serving) : nullptr;
  if (name == nullptr) {
    std::cerr << "tierserve health: " << who << ": the answer is not a HealthCheckResponse ("
              << (serving.has_value() ? absl::StrCat("status ", *serving) : "malformed") << ")\n";
    return 1;
  }
  if (*serving != 1) {
    std::cerr << "tierserve health: " << who << ": " << name << "\n";
    return 1;
  }
  std::cout << "tierserve health: " << who << ": " << name << "\n";
  return 0;
}

}  // namespace tierserve
