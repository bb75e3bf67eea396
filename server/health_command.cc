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
#include "server/common_flags.h"

ABSL_FLAG(std::string, address, "127.0.0.1:50051", "gRPC address host:port of the daemon to ask.");
ABSL_FLAG(std::string, service, "",
          "Service whose health to ask: empty for the whole server (SERVING once every model is "
          "loaded, NOT_SERVING while loading or draining), or tierserve.v1.Generation.");
ABSL_FLAG(int32_t, timeout_seconds, 5, "Deadline of the call in seconds (> 0), connecting included.");

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

}  // namespace

int RunHealthCommand(const std::vector<std::string>& args) {
  ParseCommandFlags("health",
                    "tierserve health [--address host:port] [--service NAME] [--timeout_seconds N]\n"
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

  // A probe talks to the address it is given: no HTTP proxy from the environment.
  grpc::ChannelArguments channel_args;
  channel_args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), channel_args);
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
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
