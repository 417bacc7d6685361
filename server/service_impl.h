// The gRPC face of KnowledgeServer: moke.v1.KnowledgeEditor on the callback API.
//
// Every RPC goes through one path (Serve): check the bearer token the RPC needs, parse the request, build
// the call's Budget (its deadline, and a flag that the call's cancellation sets), convert the proto into a
// plain struct, hand it to the engine and return; the engine finishes the call from its own threads
// (never compute on a gRPC thread). Outcomes are counted here, in one place, for every RPC.
//
// Requests arrive as raw bytes and are parsed here: protobuf refuses a proto3 string field that is not
// valid UTF-8, and gRPC would answer INTERNAL or UNIMPLEMENTED before any handler ran. Parsing here
// makes every malformed request INVALID_ARGUMENT.
//
// Thread-safety: stateless apart from the engine and metrics pointers, which must outlive the service.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "moke/v1/moke.grpc.pb.h"
#include "server/follow_stream.h"
#include "server/knowledge_server.h"
#include "server/metrics.h"

namespace moke::server {

// Proto <-> plain struct conversions (testable without a server).
std::optional<Routing> RoutingFromProto(moke::v1::RoutingMode mode);
void RouteToProto(const Route& route, moke::v1::RouteInfo* out);
moke::v1::StopReason StopReasonToProto(AskStop stop);
void EditEntryToProto(const EditEntry& e, moke::v1::EditRecord* out);
void SnapshotToProto(const storage::SnapshotFile& f, moke::v1::SnapshotInfo* out);
// A gRPC deadline (system clock; max when none) as a steady-clock deadline.
Clock::time_point DeadlineFrom(std::chrono::system_clock::time_point deadline);

// Which bearer token an RPC needs.
enum class Access {
  kOpen,     // none: Ask, Score, GetStatus, ListSnapshots
  kHistory,  // the read token or the edit token: ListEdits, GetEdit, Follow (they hold every edited fact)
  kEdit,     // the edit token: EditFact, RetractFact, CreateSnapshot, RestoreSnapshot
};

struct ServiceTokens {
  std::string edit;  // empty: the kEdit RPCs need no token
  std::string read;  // empty: the kHistory RPCs accept only the edit token (none when both are empty)
};

namespace internal {
namespace v1 = ::moke::v1;
using KE = v1::KnowledgeEditor;
using RawService = KE::WithRawCallbackMethod_EditFact<KE::WithRawCallbackMethod_RetractFact<
    KE::WithRawCallbackMethod_GetEdit<KE::WithRawCallbackMethod_Ask<KE::WithRawCallbackMethod_AskStream<
        KE::WithRawCallbackMethod_Score<KE::WithRawCallbackMethod_GetStatus<KE::WithRawCallbackMethod_ListEdits<
            KE::WithRawCallbackMethod_CreateSnapshot<KE::WithRawCallbackMethod_RestoreSnapshot<
                KE::WithRawCallbackMethod_ListSnapshots<KE::WithRawCallbackMethod_Follow<KE::Service>>>>>>>>>>>>;
}  // namespace internal

class KnowledgeEditorService final : public internal::RawService {
 public:
  KnowledgeEditorService(KnowledgeServer* engine, Metrics* metrics, ServiceTokens tokens)
      : engine_(engine), metrics_(metrics), tokens_(std::move(tokens)), follow_(engine) {}

  using Reactor = grpc::ServerUnaryReactor;
  using Ctx = grpc::CallbackServerContext;
  using Bytes = grpc::ByteBuffer;
  Reactor* EditFact(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  Reactor* RetractFact(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  Reactor* GetEdit(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  Reactor* Ask(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  // Server streaming: a message per token, then the whole answer (see AskStreamReactor in the .cc).
  grpc::ServerWriteReactor<Bytes>* AskStream(Ctx* ctx, const Bytes* req) override;
  Reactor* Score(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  Reactor* GetStatus(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  Reactor* ListEdits(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  Reactor* CreateSnapshot(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  Reactor* RestoreSnapshot(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  Reactor* ListSnapshots(Ctx* ctx, const Bytes* req, Bytes* resp) override;
  // Server streaming to a follower (server/follow_stream.h).
  grpc::ServerWriteReactor<Bytes>* Follow(Ctx* ctx, const Bytes* req) override;
  // Waits for every Follow stream's thread; after the gRPC server stopped, before the engine goes.
  void JoinFollowStreams() { follow_.Join(); }

  // Completion of a handler: the status and an optional outcome label (nullptr: from the status).
  using Done = std::function<void(const absl::Status&, const char* outcome)>;
  template <typename Req, typename Resp>
  using Handler = void (KnowledgeEditorService::*)(const Req&, const Budget&, Resp*, Done);

 private:
  // The one path every RPC takes (see the file comment).
  template <typename Req, typename Resp>
  Reactor* Serve(Ctx* ctx, const Bytes* request, Bytes* response, const char* rpc, Access access,
                 Handler<Req, Resp> handle);
  absl::Status Authorize(Ctx* ctx, const char* rpc, Access access) const;
  // Authorize, then parse the request (INVALID_ARGUMENT when it does not parse).
  template <typename Req>
  absl::Status Admit(Ctx* ctx, const Bytes* request, const char* rpc, Access access, Req* req) const;
  // Counts the outcome and finishes.
  void Finish(Reactor* reactor, const char* rpc, const absl::Status& status, const char* outcome = nullptr);
  // Counts the outcome of a call that does not finish through Finish (AskStream).
  void CountOutcome(const char* rpc, const absl::Status& status) const;

  // Handlers: proto -> plain struct -> engine -> proto.
  void DoEditFact(const internal::v1::EditFactRequest& req, const Budget& budget,
                  internal::v1::EditFactResponse* resp, Done done);
  void DoRetractFact(const internal::v1::RetractFactRequest& req, const Budget& budget,
                     internal::v1::RetractFactResponse* resp, Done done);
  void DoGetEdit(const internal::v1::GetEditRequest& req, const Budget& budget, internal::v1::GetEditResponse* resp,
                 Done done);
  void DoAsk(const internal::v1::AskRequest& req, const Budget& budget, internal::v1::AskResponse* resp, Done done);
  static AskQuery AskQueryOf(const internal::v1::AskRequest& req, const Budget& budget);
  static void AskResultToProto(const AskResult& r, internal::v1::AskResponse* resp);
  void DoScore(const internal::v1::ScoreRequest& req, const Budget& budget, internal::v1::ScoreResponse* resp,
               Done done);
  void DoGetStatus(const internal::v1::GetStatusRequest& req, const Budget& budget,
                   internal::v1::GetStatusResponse* resp, Done done);
  void DoListEdits(const internal::v1::ListEditsRequest& req, const Budget& budget,
                   internal::v1::ListEditsResponse* resp, Done done);
  void DoCreateSnapshot(const internal::v1::CreateSnapshotRequest& req, const Budget& budget,
                        internal::v1::CreateSnapshotResponse* resp, Done done);
  void DoRestoreSnapshot(const internal::v1::RestoreSnapshotRequest& req, const Budget& budget,
                         internal::v1::RestoreSnapshotResponse* resp, Done done);
  void DoListSnapshots(const internal::v1::ListSnapshotsRequest& req, const Budget& budget,
                       internal::v1::ListSnapshotsResponse* resp, Done done);

  KnowledgeServer* const engine_;
  Metrics* const metrics_;
  const ServiceTokens tokens_;
  FollowStreams follow_;
};

}  // namespace moke::server
