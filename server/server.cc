#include "server/server.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/follower.h"
#include "server/metrics.h"
#include "server/service_impl.h"
#include "spdlog/spdlog.h"

namespace moke::server {

namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

constexpr char kServiceName[] = "moke.v1.KnowledgeEditor";

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = options;
  s->metrics_ = std::make_unique<Metrics>();
  MOKE_ASSIGN_OR_RETURN(s->engine_, KnowledgeServer::Create(options.engine, s->metrics_.get()));
  s->service_ = std::make_unique<KnowledgeEditorService>(s->engine_.get(), s->metrics_.get(),
                                                         ServiceTokens{options.token, options.read_token});

  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!options.tls_cert.empty()) {
    MOKE_ASSIGN_OR_RETURN(std::string cert, ReadFile(options.tls_cert));
    MOKE_ASSIGN_OR_RETURN(std::string key, ReadFile(options.tls_key));
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({key, cert});
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, creds, &s->port_);
  builder.RegisterService(s->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  s->grpc_server_ = builder.BuildAndStart();
  if (!s->grpc_server_ || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("--listen: cannot listen on ", options.listen));
  }
  auto* health = s->grpc_server_->GetHealthCheckService();
  health->SetServingStatus(false);
  health->SetServingStatus(kServiceName, false);
  if (!options.metrics_listen.empty()) {
    MOKE_ASSIGN_OR_RETURN(s->metrics_http_, MetricsHttpServer::Start(options.metrics_listen, s->metrics_.get()));
  }
  spdlog::info("listening on {} (port {}){}; metrics on port {}", options.listen, s->port_,
               options.tls_cert.empty() ? "" : " with TLS", s->metrics_port());
  return s;
}

int Server::metrics_port() const { return metrics_http_ ? metrics_http_->port() : 0; }

absl::Status Server::LoadAndServe() {
  MOKE_RETURN_IF_ERROR(engine_->Start());
  auto* health = grpc_server_->GetHealthCheckService();
  if (engine_->follower()) {
    FollowerOptions f;
    f.editor = options_.engine.follow;
    f.token = options_.follow_token;
    f.max_lag_versions = options_.max_lag_versions;
    // Readiness (the service's status) follows the lag; liveness (the server's, "") is SERVING once the
    // follower runs, lagging or not: a follower behind its editor is not a follower to restart.
    MOKE_ASSIGN_OR_RETURN(follower_, Follower::Start(f, engine_.get(), metrics_.get(), [health](bool ready) {
                            health->SetServingStatus(kServiceName, ready);
                          }));
    health->SetServingStatus("", true);
    return absl::OkStatus();
  }
  health->SetServingStatus(true);
  health->SetServingStatus(kServiceName, true);
  return absl::OkStatus();
}

void Server::Shutdown(bool write_snapshot) {
  if (shut_down_) return;
  shut_down_ = true;
  follower_.reset();  // stops following (and setting the health status)
  if (grpc_server_) {
    auto* health = grpc_server_->GetHealthCheckService();
    health->SetServingStatus(false);
    health->SetServingStatus(kServiceName, false);
  }
  // The engine first: it refuses new work and finishes every queued edit and read, which finishes their
  // reactors, so the gRPC shutdown below has nothing in flight to wait for.
  if (engine_) engine_->Shutdown(write_snapshot);
  if (grpc_server_) {
    grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(options_.shutdown_grace_seconds));
    grpc_server_->Wait();
  }
  if (service_) service_->JoinFollowStreams();
  metrics_http_.reset();
}

Server::~Server() { Shutdown(false); }

}  // namespace moke::server
