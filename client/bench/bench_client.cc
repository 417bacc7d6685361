#include "client/bench/bench_client.h"

#include <chrono>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace moke::bench {

absl::Status FromGrpc(const grpc::Status& status, absl::string_view rpc) {
  if (status.ok()) return absl::OkStatus();
  static constexpr const char* kNames[] = {"OK",        "CANCELLED",          "UNKNOWN",         "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",  "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                           "UNIMPLEMENTED", "INTERNAL",      "UNAVAILABLE",     "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int code = static_cast<int>(status.error_code());
  const char* name = (code >= 0 && code <= 16) ? kNames[code] : "UNKNOWN";
  return absl::Status(static_cast<absl::StatusCode>(code), absl::StrCat(rpc, ": ", name, ": ", status.error_message()));
}

bool IsLoopbackAddress(absl::string_view address) {
  absl::string_view host;
  absl::string_view port;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':') return false;
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return false;
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  int port_num = 0;
  if (!absl::SimpleAtoi(std::string(port), &port_num) || port_num <= 0 || port_num > 65535) return false;
  if (host == "localhost" || host == "::1") return true;
  const std::string host_str(host);
  std::vector<std::string> parts = absl::StrSplit(host_str, '.');
  if (parts.size() != 4 || parts[0] != "127") return false;
  for (const std::string& p : parts) {
    int v = -1;
    if (p.empty() || p.size() > 3 || !absl::SimpleAtoi(p, &v) || v < 0 || v > 255) return false;
  }
  return true;
}

BenchClient::BenchClient(ClientOptions options) : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (options_.own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_ = grpc::CreateCustomChannel(options_.server, grpc::InsecureChannelCredentials(), args);
  stub_ = moke::v1::KnowledgeEditor::NewStub(channel_);
}

absl::StatusOr<std::unique_ptr<BenchClient>> BenchClient::Create(const ClientOptions& options) {
  if (options.server.empty() || options.server.find(':') == std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("--server must be host:port, got \"", options.server, "\""));
  return std::unique_ptr<BenchClient>(new BenchClient(options));
}

void BenchClient::Prepare(grpc::ClientContext* ctx, double timeout_s) const {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6)));
  if (!options_.token.empty()) ctx->AddMetadata("authorization", "Bearer " + options_.token);
}

absl::StatusOr<moke::v1::GetStatusResponse> BenchClient::GetStatus(double timeout_s) {
  grpc::ClientContext ctx;
  Prepare(&ctx, timeout_s > 0 ? timeout_s : options_.read_timeout_s);
  moke::v1::GetStatusResponse resp;
  if (auto s = FromGrpc(stub_->GetStatus(&ctx, moke::v1::GetStatusRequest(), &resp), "GetStatus"); !s.ok()) return s;
  return resp;
}

absl::StatusOr<moke::v1::EditFactResponse> BenchClient::EditFact(const moke::v1::EditFactRequest& request) {
  grpc::ClientContext ctx;
  Prepare(&ctx, options_.edit_timeout_s);
  moke::v1::EditFactResponse resp;
  if (auto s = FromGrpc(stub_->EditFact(&ctx, request, &resp), "EditFact"); !s.ok()) return s;
  return resp;
}

absl::StatusOr<moke::v1::ScoreResponse> BenchClient::Score(const moke::v1::ScoreRequest& request) {
  grpc::ClientContext ctx;
  Prepare(&ctx, options_.read_timeout_s);
  moke::v1::ScoreResponse resp;
  if (auto s = FromGrpc(stub_->Score(&ctx, request, &resp), "Score"); !s.ok()) return s;
  return resp;
}

absl::StatusOr<moke::v1::AskResponse> BenchClient::Ask(const moke::v1::AskRequest& request) {
  grpc::ClientContext ctx;
  Prepare(&ctx, options_.read_timeout_s);
  moke::v1::AskResponse resp;
  if (auto s = FromGrpc(stub_->Ask(&ctx, request, &resp), "Ask"); !s.ok()) return s;
  return resp;
}

absl::Status BenchClient::WaitUntilServing(double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(static_cast<int64_t>(timeout_s * 1e6));
  absl::Status last = absl::DeadlineExceededError("no answer");
  while (true) {
    auto status = GetStatus(2.0);
    if (status.ok() && status->serving()) return absl::OkStatus();
    last = status.ok() ? absl::UnavailableError("GetStatus: the server is not serving yet") : status.status();
    // A refused connection or a server still loading its model: try again until the deadline.
    const bool retryable = !status.ok() ? (absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last)) : true;
    if (!retryable || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return absl::Status(last.code(), absl::StrCat("server ", options_.server, " is not reachable or not serving (waited ",
                                                timeout_s, " s): ", last.message()));
}

}  // namespace moke::bench
