// A small synchronous client of moke.v1.KnowledgeEditor for the benchmark: deadlines, the bearer token,
// and grpc::Status turned into absl::Status ("<Rpc>: <CODE>: <message>").
//
// Thread-safety: a BenchClient may be used from several threads at once (gRPC stubs are thread-safe).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "moke/v1/moke.grpc.pb.h"

namespace moke::bench {

struct ClientOptions {
  std::string server;            // host:port
  std::string token;             // bearer token ("" = none)
  double edit_timeout_s = 600;   // EditFact deadline
  double read_timeout_s = 120;   // Score / Ask / GetStatus deadline
  bool own_connection = false;   // true: do not share the TCP connection with other channels (load mode)
};

class BenchClient {
 public:
  static absl::StatusOr<std::unique_ptr<BenchClient>> Create(const ClientOptions& options);

  absl::StatusOr<moke::v1::GetStatusResponse> GetStatus(double timeout_s = 0);
  absl::StatusOr<moke::v1::EditFactResponse> EditFact(const moke::v1::EditFactRequest& request);
  absl::StatusOr<moke::v1::ScoreResponse> Score(const moke::v1::ScoreRequest& request);
  absl::StatusOr<moke::v1::AskResponse> Ask(const moke::v1::AskRequest& request);

  // Polls GetStatus until the server reports serving, for at most `timeout_s`. The error names the server
  // and carries the last RPC status.
  absl::Status WaitUntilServing(double timeout_s);

  const ClientOptions& options() const { return options_; }

 private:
  explicit BenchClient(ClientOptions options);
  void Prepare(grpc::ClientContext* ctx, double timeout_s) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<moke::v1::KnowledgeEditor::Stub> stub_;
};

// grpc::Status -> absl::Status, prefixed with the RPC name.
absl::Status FromGrpc(const grpc::Status& status, absl::string_view rpc);

// "host:port" where host is 127.0.0.0/8, localhost, ::1 or [::1].
bool IsLoopbackAddress(absl::string_view address);

}  // namespace moke::bench
