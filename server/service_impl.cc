#include "server/service_impl.h"

#include <memory>
#include <string_view>

#include "grpcpp/impl/codegen/proto_utils.h"

#include "server/auth.h"
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

void EditRecordToProto(const storage::LogRecord& r, v1::EditRecord* out) {
  out->set_edit_id(r.edit_id);
  out->set_question(r.question);
  out->set_answer(r.answer);
  out->set_request_id(r.request_id);
  out->set_expert(r.expert);
  out->set_version(r.version);
  out->set_unix_micros(r.unix_micros);
}

void SnapshotToProto(const storage::SnapshotFile& f, v1::SnapshotInfo* out) {
  out->set_name(f.name);
  out->set_version(f.version);
  out->set_bytes(f.bytes);
  out->set_unix_micros(f.unix_micros);
}

Deadline DeadlineFrom(std::chrono::system_clock::time_point deadline) {
  if (deadline == std::chrono::system_clock::time_point::max()) return kNoDeadline;
  const auto left = deadline - std::chrono::system_clock::now();
  if (left > std::chrono::hours(24 * 365)) return kNoDeadline;
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(left);
}

absl::Status KnowledgeEditorService::Authorize(grpc::CallbackServerContext* ctx) const {
  if (token_.empty()) return absl::OkStatus();
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return CheckBearerToken(nullptr, token_);
  const std::string_view v(it->second.data(), it->second.size());
  return CheckBearerToken(&v, token_);
}

void KnowledgeEditorService::Finish(grpc::ServerUnaryReactor* reactor, const char* rpc, const absl::Status& status,
                                    const char* outcome) {
  if (metrics_) metrics_->CountRequest(rpc, outcome ? outcome : StatusCodeLabel(status.code()));
  reactor->Finish(ToGrpcStatus(status));
}

template <typename Req, typename Resp, typename Handler>
grpc::ServerUnaryReactor* KnowledgeEditorService::RawUnary(grpc::CallbackServerContext* ctx,
                                                           const grpc::ByteBuffer* request, grpc::ByteBuffer* response,
                                                           const char* rpc, Handler handle) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto req = std::make_shared<Req>();
  grpc::ByteBuffer copy(*request);
  if (!grpc::SerializationTraits<Req>::Deserialize(&copy, req.get()).ok()) {
    Finish(reactor, rpc,
           absl::InvalidArgumentError("request does not parse (is every text field valid UTF-8?)"));
    return reactor;
  }
  auto resp = std::make_shared<Resp>();
  handle(ctx, *req, resp.get(), [this, reactor, rpc, req, resp, response](const absl::Status& s, const char* outcome) {
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

grpc::ServerUnaryReactor* KnowledgeEditorService::EditFact(grpc::CallbackServerContext* ctx,
                                                           const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) {
  return RawUnary<v1::EditFactRequest, v1::EditFactResponse>(
      ctx, req, resp, "edit_fact", [this](auto* c, const auto& q, auto* r, Done d) { DoEditFact(c, q, r, std::move(d)); });
}

grpc::ServerUnaryReactor* KnowledgeEditorService::Ask(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                                      grpc::ByteBuffer* resp) {
  return RawUnary<v1::AskRequest, v1::AskResponse>(
      ctx, req, resp, "ask", [this](auto* c, const auto& q, auto* r, Done d) { DoAsk(c, q, r, std::move(d)); });
}

grpc::ServerUnaryReactor* KnowledgeEditorService::Score(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                                        grpc::ByteBuffer* resp) {
  return RawUnary<v1::ScoreRequest, v1::ScoreResponse>(
      ctx, req, resp, "score", [this](auto* c, const auto& q, auto* r, Done d) { DoScore(c, q, r, std::move(d)); });
}

void KnowledgeEditorService::DoEditFact(grpc::CallbackServerContext* ctx, const v1::EditFactRequest& req,
                                        v1::EditFactResponse* resp, Done done) {
  if (absl::Status s = Authorize(ctx); !s.ok()) return done(s, nullptr);
  EditSubmission e{req.question(), req.answer(), req.request_id(),
                   {req.unrelated_prompts().begin(), req.unrelated_prompts().end()}, DeadlineFrom(ctx->deadline())};
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
    done(absl::OkStatus(), r->duplicate ? "duplicate" : "ok");
  });
}

void KnowledgeEditorService::DoAsk(grpc::CallbackServerContext* ctx, const v1::AskRequest& req, v1::AskResponse* resp,
                                   Done done) {
  AskQuery q{req.question(), req.max_new_tokens(), req.min_version(), RoutingFromProto(req.routing()),
             DeadlineFrom(ctx->deadline())};
  engine_->SubmitAsk(std::move(q), [resp, done = std::move(done)](absl::StatusOr<AskResult> r) {
    if (!r.ok()) return done(r.status(), nullptr);
    resp->set_answer(r->answer);
    resp->set_version(r->version);
    RouteToProto(r->route, resp->mutable_route());
    for (int64_t t : r->tokens) resp->add_tokens(t);
    done(absl::OkStatus(), nullptr);
  });
}

void KnowledgeEditorService::DoScore(grpc::CallbackServerContext* ctx, const v1::ScoreRequest& req,
                                     v1::ScoreResponse* resp, Done done) {
  ScoreQuery q{req.prompt(), req.answer(), req.min_version(), RoutingFromProto(req.routing()), req.original_model(),
               DeadlineFrom(ctx->deadline())};
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

grpc::ServerUnaryReactor* KnowledgeEditorService::GetStatus(grpc::CallbackServerContext* ctx,
                                                            const v1::GetStatusRequest*,
                                                            v1::GetStatusResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
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
  Finish(reactor, "get_status", absl::OkStatus());
  return reactor;
}

grpc::ServerUnaryReactor* KnowledgeEditorService::ListEdits(grpc::CallbackServerContext* ctx,
                                                            const v1::ListEditsRequest* req,
                                                            v1::ListEditsResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (req->limit() < 0) {
    Finish(reactor, "list_edits", absl::InvalidArgumentError("limit must be >= 0"));
    return reactor;
  }
  const EditList list = engine_->ListEdits(req->start(), req->limit());
  for (const auto& r : list.edits) EditRecordToProto(r, resp->add_edits());
  resp->set_total(list.total);
  Finish(reactor, "list_edits", absl::OkStatus());
  return reactor;
}

grpc::ServerUnaryReactor* KnowledgeEditorService::CreateSnapshot(grpc::CallbackServerContext* ctx,
                                                                 const v1::CreateSnapshotRequest*,
                                                                 v1::CreateSnapshotResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (absl::Status s = Authorize(ctx); !s.ok()) {
    Finish(reactor, "create_snapshot", s);
    return reactor;
  }
  engine_->SubmitSnapshot(DeadlineFrom(ctx->deadline()),
                          [this, reactor, resp](absl::StatusOr<storage::SnapshotFile> r) {
                            if (r.ok()) SnapshotToProto(*r, resp->mutable_snapshot());
                            Finish(reactor, "create_snapshot", r.status());
                          });
  return reactor;
}

grpc::ServerUnaryReactor* KnowledgeEditorService::RestoreSnapshot(grpc::CallbackServerContext* ctx,
                                                                  const v1::RestoreSnapshotRequest* req,
                                                                  v1::RestoreSnapshotResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (absl::Status s = Authorize(ctx); !s.ok()) {
    Finish(reactor, "restore_snapshot", s);
    return reactor;
  }
  engine_->SubmitRestore(req->name(), DeadlineFrom(ctx->deadline()), [this, reactor, resp](absl::StatusOr<uint64_t> r) {
    if (r.ok()) resp->set_version(*r);
    Finish(reactor, "restore_snapshot", r.status());
  });
  return reactor;
}

grpc::ServerUnaryReactor* KnowledgeEditorService::ListSnapshots(grpc::CallbackServerContext* ctx,
                                                                const v1::ListSnapshotsRequest*,
                                                                v1::ListSnapshotsResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<std::vector<storage::SnapshotFile>> list = engine_->ListSnapshots();
  if (list.ok()) {
    for (const auto& f : *list) SnapshotToProto(f, resp->add_snapshots());
  }
  Finish(reactor, "list_snapshots", list.status());
  return reactor;
}

}  // namespace moke::server
