// One running moke-server: the gRPC server (KnowledgeEditor, grpc.health.v1, reflection), the engine and
// the metrics endpoint. Used by main.cc and by the in-process tests.
//
// Life cycle: Start() listens at once (health NOT_SERVING, RPCs UNAVAILABLE); LoadAndServe() loads the
// model and replays the log, then health turns SERVING; Shutdown() turns health NOT_SERVING, drains the
// edit queue, optionally writes a snapshot, and stops. Not thread-safe: one owner drives it.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "server/server_options.h"

namespace grpc {
class Server;
}

namespace moke::server {

class Follower;
class KnowledgeEditorService;
class MetricsHttpServer;

class Server {
 public:
  // `options` must have been through FinalizeServerOptions. With --follow, LoadAndServe also connects to
  // the editor (server/follower.h); the health status of moke.v1.KnowledgeEditor (readiness) then follows
  // the follower's lag, and the server's own ("", liveness) is SERVING while it runs.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();

  absl::Status LoadAndServe();
  void Shutdown(bool write_snapshot);

  int port() const { return port_; }
  int metrics_port() const;
  KnowledgeServer* engine() { return engine_.get(); }
  Metrics* metrics() { return metrics_.get(); }

 private:
  Server() = default;
  ServerOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<KnowledgeServer> engine_;
  std::unique_ptr<KnowledgeEditorService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<MetricsHttpServer> metrics_http_;
  std::unique_ptr<Follower> follower_;  // --follow only
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace moke::server
