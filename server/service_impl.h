// The gRPC face of KnowledgeServer: moke.v1.KnowledgeEditor on the callback API.
//
// Each handler checks the bearer token where required, converts the proto into a plain struct, hands it
// to the engine and returns; the engine finishes the reactor from its own threads (never compute on a
// gRPC thread). Outcomes are counted here, in one place, for every RPC.
//
// Thread-safety: stateless apart from the engine and metrics pointers, which must outlive the service.
#pragma once

#include <functional>
#include <string>

#include "moke/v1/moke.grpc.pb.h"
#include "server/knowledge_server.h"
#include "server/metrics.h"

namespace moke::server {

// Proto <-> plain struct conversions (testable without a server).
std::optional<Routing> RoutingFromProto(moke::v1::RoutingMode mode);
void RouteToProto(const Route& route, moke::v1::RouteInfo* out);
void EditRecordToProto(const storage::LogRecord& r, moke::v1::EditRecord* out);
void SnapshotToProto(const storage::SnapshotFile& f, moke::v1::SnapshotInfo* out);
// A gRPC deadline (system clock; max when none) as a steady-clock deadline.
Deadline DeadlineFrom(std::chrono::system_clock::time_point deadline);

// EditFact, Ask and Score take their requests as raw bytes and parse them here: protobuf refuses a proto3
// string field that is not valid UTF-8 while parsing, and gRPC would answer INTERNAL before any handler
// ran. Parsing here turns that into INVALID_ARGUMENT.
using KnowledgeEditorServiceBase = moke::v1::KnowledgeEditor::WithRawCallbackMethod_EditFact<
    moke::v1::KnowledgeEditor::WithRawCallbackMethod_Ask<
        moke::v1::KnowledgeEditor::WithRawCallbackMethod_Score<moke::v1::KnowledgeEditor::CallbackService>>>;

class KnowledgeEditorService final : public KnowledgeEditorServiceBase {
 public:
  // `token`: the bearer token required by EditFact, CreateSnapshot and RestoreSnapshot; empty: none.
  KnowledgeEditorService(KnowledgeServer* engine, Metrics* metrics, std::string token)
      : engine_(engine), metrics_(metrics), token_(std::move(token)) {}

  grpc::ServerUnaryReactor* EditFact(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                     grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Ask(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Score(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                  grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* GetStatus(grpc::CallbackServerContext* ctx, const moke::v1::GetStatusRequest* req,
                                      moke::v1::GetStatusResponse* resp) override;
  grpc::ServerUnaryReactor* ListEdits(grpc::CallbackServerContext* ctx, const moke::v1::ListEditsRequest* req,
                                      moke::v1::ListEditsResponse* resp) override;
  grpc::ServerUnaryReactor* CreateSnapshot(grpc::CallbackServerContext* ctx, const moke::v1::CreateSnapshotRequest* req,
                                           moke::v1::CreateSnapshotResponse* resp) override;
  grpc::ServerUnaryReactor* RestoreSnapshot(grpc::CallbackServerContext* ctx,
                                            const moke::v1::RestoreSnapshotRequest* req,
                                            moke::v1::RestoreSnapshotResponse* resp) override;
  grpc::ServerUnaryReactor* ListSnapshots(grpc::CallbackServerContext* ctx, const moke::v1::ListSnapshotsRequest* req,
                                          moke::v1::ListSnapshotsResponse* resp) override;

  // Completion of a typed handler: the status and an optional outcome label (nullptr: from the status).
  using Done = std::function<void(const absl::Status&, const char* outcome)>;

 private:
  void DoEditFact(grpc::CallbackServerContext* ctx, const moke::v1::EditFactRequest& req,
                  moke::v1::EditFactResponse* resp, Done done);
  void DoAsk(grpc::CallbackServerContext* ctx, const moke::v1::AskRequest& req, moke::v1::AskResponse* resp,
             Done done);
  void DoScore(grpc::CallbackServerContext* ctx, const moke::v1::ScoreRequest& req, moke::v1::ScoreResponse* resp,
               Done done);
  // Parses `request`, runs `handle`, serializes the response into `response` and finishes.
  template <typename Req, typename Resp, typename Handler>
  grpc::ServerUnaryReactor* RawUnary(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response, const char* rpc, Handler handle);
  absl::Status Authorize(grpc::CallbackServerContext* ctx) const;
  // Counts the outcome and finishes.
  void Finish(grpc::ServerUnaryReactor* reactor, const char* rpc, const absl::Status& status,
              const char* outcome = nullptr);

  KnowledgeServer* const engine_;
  Metrics* const metrics_;
  const std::string token_;
};

}  // namespace moke::server
