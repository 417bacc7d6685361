#include "server/service_impl.h"

#include <atomic>
#include <deque>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "server/auth.h"
#include "core/common/status_macros.h"
#include "server/status_util.h"

namespace moke::server {

namespace v1 = ::moke::v1;

std::optional<Routing> RoutingFromProto(v1::RoutingMode mode) {
  switch (mode) {
    case v1::ROUTING_ROUTER: return Routing::kRouter;
    case v1::ROUTING_ACTIVATION: return Routing::kActivation;
    case v1::ROUTING_ACTIVATION_ROUTER: return Routing::kActivationRouter;
    default: return std::nullopt;
  }
}

void RouteToProto(const Route& route, v1::RouteInfo* out) {
  out->set_expert(route.expert);
  for (double d : route.deltas) out->add_deltas(d);
  for (double p : route.router_probs) out->add_router_probs(p);
  out->set_threshold(route.threshold);
  out->set_subject_score(route.subject_score);
  out->set_relation_score(route.relation_score);
  out->set_subject(route.subject);
  out->set_fact_version(route.fact_version);
}

v1::StopReason StopReasonToProto(AskStop stop) {
  switch (stop) {
    case AskStop::kEndOfAnswer: return v1::STOP_END_OF_ANSWER;
    case AskStop::kTokenLimit: return v1::STOP_TOKEN_LIMIT;
  }
  return v1::STOP_UNSPECIFIED;
}

void EditEntryToProto(const EditEntry& e, v1::EditRecord* out) {
  const storage::LogRecord& r = e.record;
  out->set_edit_id(r.edit_id);
  out->set_question(r.question);
  out->set_answer(r.answer);
  out->set_request_id(r.request_id);
  out->set_expert(r.expert);
  out->set_version(r.version);
  out->set_unix_micros(r.unix_micros);
  out->set_rolled_back_version(e.rolled_back_version);
}

void SnapshotToProto(const storage::SnapshotFile& f, v1::SnapshotInfo* out) {
  out->set_name(f.name);
  out->set_version(f.version);
  out->set_bytes(f.bytes);
  out->set_unix_micros(f.unix_micros);
}

Clock::time_point DeadlineFrom(std::chrono::system_clock::time_point deadline) {
  if (deadline == std::chrono::system_clock::time_point::max()) return Clock::time_point::max();
  const auto left = deadline - std::chrono::system_clock::now();
  if (left > std::chrono::hours(24 * 365)) return Clock::time_point::max();
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

namespace {

// A unary call's reactor: deletes itself when the call is done, and turns the call's cancellation (the
// client cancelled, or its deadline passed) into the budget's flag, which training and decoding check.
class CallReactor final : public grpc::ServerUnaryReactor {
 public:
  std::shared_ptr<const std::atomic<bool>> cancelled() const { return cancelled_; }
  void OnCancel() override { cancelled_->store(true, std::memory_order_relaxed); }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace

absl::Status KnowledgeEditorService::Authorize(Ctx* ctx, const char* rpc, Access access) const {
  std::vector<std::string_view> accepted;
  switch (access) {
    case Access::kOpen: return absl::OkStatus();
    case Access::kHistory: accepted = {tokens_.edit, tokens_.read}; break;
    case Access::kEdit: accepted = {tokens_.edit}; break;
  }
  std::vector<std::string_view> headers;
  auto [begin, end] = ctx->client_metadata().equal_range("authorization");
  for (auto it = begin; it != end; ++it) headers.emplace_back(it->second.data(), it->second.size());
  return AuthorizeCall(rpc, ctx->peer(), headers, accepted);
}

void KnowledgeEditorService::Finish(Reactor* reactor, const char* rpc, const absl::Status& status,
                                    const char* outcome) {
  if (metrics_) metrics_->CountRequest(rpc, outcome ? outcome : StatusCodeLabel(status.code()));
  reactor->Finish(ToGrpcStatus(status));
}

void KnowledgeEditorService::CountOutcome(const char* rpc, const absl::Status& status) const {
  if (metrics_) metrics_->CountRequest(rpc, StatusCodeLabel(status.code()));
}

template <typename Req>
absl::Status KnowledgeEditorService::Admit(Ctx* ctx, const Bytes* request, const char* rpc, Access access,
                                           Req* req) const {
  MOKE_RETURN_IF_ERROR(Authorize(ctx, rpc, access));
  Bytes copy(*request);
  if (!grpc::SerializationTraits<Req>::Deserialize(&copy, req).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("request does not parse as ", Req::descriptor()->full_name(),
                                                   " (is every text field valid UTF-8?)"));
  }
  return absl::OkStatus();
}

template <typename Req, typename Resp>
KnowledgeEditorService::Reactor* KnowledgeEditorService::Serve(Ctx* ctx, const Bytes* request, Bytes* response,
                                                               const char* rpc, Access access,
                                                               Handler<Req, Resp> handle) {
  auto* reactor = new CallReactor();
  Req req;
  if (absl::Status s = Admit(ctx, request, rpc, access, &req); !s.ok()) {
    Finish(reactor, rpc, s);
    return reactor;
  }
  auto resp = std::make_shared<Resp>();
  const Budget budget{DeadlineFrom(ctx->deadline()), reactor->cancelled()};
  (this->*handle)(req, budget, resp.get(), [this, reactor, rpc, resp, response](const absl::Status& s, const char* outcome) {
    if (s.ok()) {
      bool own = false;
      if (!grpc::SerializationTraits<Resp>::Serialize(*resp, response, &own).ok()) {
        return Finish(reactor, rpc, absl::InternalError("cannot serialize the response"));
      }
    }
    Finish(reactor, rpc, s, outcome);
  });
  return reactor;
}

// Each RPC: its metric label, the token it needs, its handler.
#define MOKE_RPC(Rpc, label, access)                                                               \
  KnowledgeEditorService::Reactor* KnowledgeEditorService::Rpc(Ctx* ctx, const Bytes* req, Bytes* resp) { \
    return Serve(ctx, req, resp, label, access, &KnowledgeEditorService::Do##Rpc);                  \
  }
MOKE_RPC(EditFact, "edit_fact", Access::kEdit)
MOKE_RPC(RetractFact, "retract_fact", Access::kEdit)
MOKE_RPC(GetEdit, "get_edit", Access::kHistory)
MOKE_RPC(Ask, "ask", Access::kOpen)
MOKE_RPC(Score, "score", Access::kOpen)
MOKE_RPC(GetStatus, "get_status", Access::kOpen)
MOKE_RPC(ListEdits, "list_edits", Access::kHistory)
MOKE_RPC(CreateSnapshot, "create_snapshot", Access::kEdit)
MOKE_RPC(RestoreSnapshot, "restore_snapshot", Access::kEdit)
MOKE_RPC(ListSnapshots, "list_snapshots", Access::kOpen)
#undef MOKE_RPC

// ---- Handlers ----

void KnowledgeEditorService::DoEditFact(const v1::EditFactRequest& req, const Budget& budget,
                                        v1::EditFactResponse* resp, Done done) {
  EditSubmission e{req.question(),
                   req.answer(),
                   req.request_id(),
                   {req.unrelated_prompts().begin(), req.unrelated_prompts().end()},
                   req.subject(),
                   {req.paraphrases().begin(), req.paraphrases().end()},
                   budget};
  engine_->SubmitEdit(std::move(e), [resp, done = std::move(done)](absl::StatusOr<EditAck> r) {
    if (!r.ok()) return done(r.status(), nullptr);
    resp->set_version(r->version);
    resp->set_edit_id(r->edit_id);
    resp->set_expert(r->expert);
    resp->set_new_concept(r->new_concept);
    resp->set_duplicate(r->duplicate);
    resp->set_iterations(r->iterations);
    resp->set_loss(r->loss);
    resp->set_apply_seconds(r->apply_seconds);
    resp->set_subject(r->subject);
    resp->set_superseded_edit_id(r->superseded_edit_id);
    done(absl::OkStatus(), r->duplicate ? "duplicate" : "ok");
  });
}

void KnowledgeEditorService::DoRetractFact(const v1::RetractFactRequest& req, const Budget& budget,
                                           v1::RetractFactResponse* resp, Done done) {
  engine_->SubmitRetract({req.question(), req.edit_id(), req.request_id(), budget},
                         [resp, done = std::move(done)](absl::StatusOr<RetractAck> r) {
                           if (!r.ok()) return done(r.status(), nullptr);
                           resp->set_version(r->version);
                           resp->set_retracted_edit_id(r->retracted_edit_id);
                           done(absl::OkStatus(), nullptr);
                         });
}

void KnowledgeEditorService::DoGetEdit(const v1::GetEditRequest& req, const Budget&, v1::GetEditResponse* resp,
                                       Done done) {
  absl::StatusOr<EditEntry> e = engine_->GetEdit(req.request_id());
  if (e.ok()) EditEntryToProto(*e, resp->mutable_edit());
  done(e.status(), nullptr);
}

AskQuery KnowledgeEditorService::AskQueryOf(const v1::AskRequest& req, const Budget& budget) {
  return AskQuery{req.question(), req.max_new_tokens(), req.min_version(), RoutingFromProto(req.routing()), budget};
}

void KnowledgeEditorService::AskResultToProto(const AskResult& r, v1::AskResponse* resp) {
  resp->set_answer(r.answer);
  resp->set_version(r.version);
  RouteToProto(r.route, resp->mutable_route());
  for (int64_t t : r.tokens) resp->add_tokens(t);
  resp->set_stop_reason(StopReasonToProto(r.stop));
}

void KnowledgeEditorService::DoAsk(const v1::AskRequest& req, const Budget& budget, v1::AskResponse* resp,
                                   Done done) {
  engine_->SubmitAsk(AskQueryOf(req, budget), [resp, done = std::move(done)](absl::StatusOr<AskResult> r) {
    if (!r.ok()) return done(r.status(), nullptr);
    AskResultToProto(*r, resp);
    done(absl::OkStatus(), nullptr);
  });
}

namespace {

// AskStream's reactor: messages are queued as the decoder makes them and written one at a time (gRPC
// allows one write in flight); the call finishes after the last write. Deletes itself when the call is
// done. The call's cancellation sets the budget's flag, which stops the decoding at its next step.
//
// Thread-safety: Send and End come from the engine's threads, OnWriteDone and OnCancel from gRPC's; the
// queue and the flags are guarded by mu_. StartWrite and Finish are called outside the lock.
class AskStreamReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  std::shared_ptr<const std::atomic<bool>> cancelled() const { return cancelled_; }

  void Send(const v1::AskStreamResponse& message) {
    grpc::ByteBuffer bytes;
    bool own = false;
    if (!grpc::SerializationTraits<v1::AskStreamResponse>::Serialize(message, &bytes, &own).ok()) return;
    const grpc::ByteBuffer* start = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (broken_ || finished_) return;
      queue_.push_back(std::move(bytes));  // a deque keeps the front's address while it grows
      if (!writing_) {
        writing_ = true;
        start = &queue_.front();
      }
    }
    if (start != nullptr) StartWrite(start);
  }

  // The call's status, sent after every queued message.
  void End(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      status_ = status;
      ending_ = true;
      if (writing_) return;  // OnWriteDone finishes
      finished_ = true;
    }
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    const grpc::ByteBuffer* next = nullptr;
    bool finish = false;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      queue_.pop_front();
      if (!ok) {  // the client is gone: nothing more will be delivered
        broken_ = true;
        queue_.clear();
      }
      if (!queue_.empty()) {
        next = &queue_.front();
      } else {
        writing_ = false;
        if (ending_ && !finished_) {
          finished_ = true;
          finish = true;
          status = status_;
        }
      }
    }
    if (next != nullptr) StartWrite(next);
    if (finish) Finish(status);
  }

  void OnCancel() override { cancelled_->store(true, std::memory_order_relaxed); }
  void OnDone() override { delete this; }

 private:
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
  absl::Mutex mu_;
  std::deque<grpc::ByteBuffer> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* KnowledgeEditorService::AskStream(Ctx* ctx, const Bytes* request) {
  static constexpr char kRpc[] = "ask_stream";
  auto* reactor = new AskStreamReactor();
  v1::AskRequest req;
  if (absl::Status s = Admit(ctx, request, kRpc, Access::kOpen, &req); !s.ok()) {
    CountOutcome(kRpc, s);
    reactor->End(ToGrpcStatus(s));
    return reactor;
  }
  const Budget budget{DeadlineFrom(ctx->deadline()), reactor->cancelled()};
  engine_->SubmitAskStream(
      AskQueryOf(req, budget),
      [reactor](const AskPiece& piece) {
        v1::AskStreamResponse m;
        for (int64_t t : piece.tokens) m.add_tokens(t);
        m.set_text(piece.text);
        reactor->Send(m);
      },
      [this, reactor](absl::StatusOr<AskResult> r) {
        CountOutcome(kRpc, r.status());
        if (r.ok()) {
          v1::AskStreamResponse last;
          AskResultToProto(*r, last.mutable_result());
          reactor->Send(last);
        }
        reactor->End(ToGrpcStatus(r.status()));
      });
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* KnowledgeEditorService::Follow(Ctx* ctx, const Bytes* request) {
  static constexpr char kRpc[] = "follow";
  v1::FollowRequest req;
  absl::Status s = Admit(ctx, request, kRpc, Access::kHistory, &req);
  if (s.ok() && engine_->follower()) {
    s = absl::FailedPreconditionError("Follow: this server is a follower; point followers at the editor");
  }
  if (s.ok() && !engine_->serving()) s = absl::UnavailableError("server is not serving (loading or shutting down)");
  CountOutcome(kRpc, s);  // counted when the stream starts (or is refused)
  return follow_.Start(req.follower_id(), s);
}

void KnowledgeEditorService::DoScore(const v1::ScoreRequest& req, const Budget& budget, v1::ScoreResponse* resp,
                                     Done done) {
  ScoreQuery q{req.prompt(), req.answer(), req.min_version(), RoutingFromProto(req.routing()), req.original_model(),
               budget};
  engine_->SubmitScore(std::move(q), [resp, done = std::move(done)](absl::StatusOr<ScoreResult> r) {
    if (!r.ok()) return done(r.status(), nullptr);
    resp->set_token_accuracy(r->token_accuracy);
    resp->set_log_prob(r->log_prob);
    for (int64_t t : r->answer_tokens) resp->add_answer_tokens(t);
    for (int64_t t : r->argmax_tokens) resp->add_argmax_tokens(t);
    resp->set_version(r->version);
    RouteToProto(r->route, resp->mutable_route());
    done(absl::OkStatus(), nullptr);
  });
}

void KnowledgeEditorService::DoGetStatus(const v1::GetStatusRequest&, const Budget&, v1::GetStatusResponse* resp,
                                         Done done) {
  const EngineStatus s = engine_->Status();
  resp->set_version(s.stats.version);
  resp->set_edits_applied(s.stats.edits_applied);
  resp->set_method(s.method);
  resp->set_model(s.model);
  resp->set_device(s.device);
  resp->set_num_experts(s.stats.num_experts);
  resp->set_edit_layer(s.stats.edit_layer);
  resp->set_queue_depth(s.queue_depth);
  resp->set_replay_buffer_size(s.stats.replay_size);
  resp->set_serving(s.serving);
  for (const auto& [part, bytes] : s.stats.memory_bytes) (*resp->mutable_memory_bytes())[part] = bytes;
  resp->set_role(s.role);
  resp->set_instance_id(s.instance_id);
  if (s.role == "follower") {
    v1::FollowerStatus* f = resp->mutable_follower();
    f->set_editor(s.follow.editor);
    f->set_connected(s.follow.connected);
    f->set_editor_version(s.follow.editor_version);
    f->set_lag_versions(s.follow.editor_version > s.stats.version ? s.follow.editor_version - s.stats.version : 0);
    f->set_last_error(s.follow.last_error);
  }
  done(absl::OkStatus(), nullptr);
}

void KnowledgeEditorService::DoListEdits(const v1::ListEditsRequest& req, const Budget&, v1::ListEditsResponse* resp,
                                         Done done) {
  absl::StatusOr<EditList> list = engine_->ListEdits(req.start(), req.limit());
  if (list.ok()) {
    for (const EditEntry& e : list->edits) EditEntryToProto(e, resp->add_edits());
    resp->set_total(list->total);
  }
  done(list.status(), nullptr);
}

void KnowledgeEditorService::DoCreateSnapshot(const v1::CreateSnapshotRequest&, const Budget& budget,
                                              v1::CreateSnapshotResponse* resp, Done done) {
  engine_->SubmitSnapshot(budget, [resp, done = std::move(done)](absl::StatusOr<storage::SnapshotFile> r) {
    if (r.ok()) SnapshotToProto(*r, resp->mutable_snapshot());
    done(r.status(), nullptr);
  });
}

void KnowledgeEditorService::DoRestoreSnapshot(const v1::RestoreSnapshotRequest& req, const Budget& budget,
                                               v1::RestoreSnapshotResponse* resp, Done done) {
  engine_->SubmitRestore(req.name(), budget, [resp, done = std::move(done)](absl::StatusOr<uint64_t> r) {
    if (r.ok()) resp->set_version(*r);
    done(r.status(), nullptr);
  });
}

void KnowledgeEditorService::DoListSnapshots(const v1::ListSnapshotsRequest&, const Budget&,
                                             v1::ListSnapshotsResponse* resp, Done done) {
  absl::StatusOr<std::vector<storage::SnapshotFile>> list = engine_->ListSnapshots();
  if (list.ok()) {
    for (const auto& f : *list) SnapshotToProto(f, resp->add_snapshots());
  }
  done(list.status(), nullptr);
}

}  // namespace moke::server
