// Prometheus metrics of the service (prometheus-cpp core registry) and a minimal HTTP/1.1 endpoint that
// serves them at GET /metrics.
//
// Why not prometheus::Exposer: with OpenBLAS loaded its civetweb server fails to start ("null context
// when constructing CivetServer", BUILD-NOTES trap 3). MetricsHttpServer is one thread with plain
// sockets, one request per connection, bounded request size and read timeout.
//
// Thread-safety: every Metrics method is safe from any thread (prometheus-cpp metrics are atomic and
// families lock when adding label sets).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace moke::server {

class Metrics {
 public:
  Metrics();
  // rpc: the RPC's name in snake case ("edit_fact", "get_edit", "ask", ...); outcome: a status code label
  // or "duplicate".
  void CountRequest(const std::string& rpc, const std::string& outcome);
  void ObserveEditSeconds(double s) { edit_latency_->Observe(s); }
  void ObserveAskSeconds(const std::string& rpc, double s);
  void ObserveQueueWaitSeconds(double s) { queue_wait_->Observe(s); }
  void SetQueueDepth(int64_t d) { queue_depth_->Set(static_cast<double>(d)); }
  void CountEditExpert(int expert);
  // expert < 0: the original weights answered.
  void CountAskRoute(int expert);
  void SetVersion(uint64_t v) { version_->Set(static_cast<double>(v)); }
  void SetEditsApplied(uint64_t v) { edits_applied_->Set(static_cast<double>(v)); }
  void SetReplayBufferSize(int64_t n) { replay_->Set(static_cast<double>(n)); }
  void SetMemoryBytes(const std::map<std::string, int64_t>& bytes);
  void SetServing(bool serving) { serving_->Set(serving ? 1 : 0); }
  void SetEditLogBytes(uint64_t b) { log_bytes_->Set(static_cast<double>(b)); }
  // Followers (server/follower.h).
  void SetFollowerLag(uint64_t versions) { follower_lag_->Set(static_cast<double>(versions)); }
  void SetFollowerConnected(bool connected) { follower_connected_->Set(connected ? 1 : 0); }
  // One step of the batched decoder over `rows` answers.
  void ObserveDecodeBatchRows(int rows) { batch_rows_->Observe(static_cast<double>(rows)); }

  // The text exposition format (version 0.0.4).
  std::string Serialize() const;
  prometheus::Registry& registry() { return *registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* ask_latency_family_;
  prometheus::Histogram* edit_latency_;
  prometheus::Histogram* queue_wait_;
  prometheus::Gauge* queue_depth_;
  prometheus::Family<prometheus::Counter>* edit_expert_;
  prometheus::Family<prometheus::Counter>* ask_route_;
  prometheus::Gauge* version_;
  prometheus::Gauge* edits_applied_;
  prometheus::Gauge* replay_;
  prometheus::Family<prometheus::Gauge>* memory_;
  prometheus::Gauge* serving_;
  prometheus::Gauge* log_bytes_;
  prometheus::Gauge* follower_lag_;
  prometheus::Gauge* follower_connected_;
  prometheus::Histogram* batch_rows_;
};

// Serves GET /metrics (and GET / with a pointer to it) on one thread.
class MetricsHttpServer {
 public:
  // Binds `address` ("host:port"; port 0 picks one) and starts the thread. `metrics` must outlive it.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& address, const Metrics* metrics);
  ~MetricsHttpServer();  // stops and joins
  int port() const { return port_; }

 private:
  MetricsHttpServer(int listen_fd, int port, int stop_fd[2], const Metrics* metrics);
  void Loop();
  void Handle(int fd);
  int listen_fd_;
  int port_;
  int stop_r_, stop_w_;
  const Metrics* metrics_;
  std::thread thread_;
};

}  // namespace moke::server
