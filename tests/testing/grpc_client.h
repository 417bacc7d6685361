// Client-side helpers for tests that talk to a moke-server over gRPC: deadlines, tokens, health.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace moke::testing {

inline void SetDeadline(grpc::ClientContext* ctx, double seconds) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}

inline void AddBearer(grpc::ClientContext* ctx, const std::string& token) {
  ctx->AddMetadata("authorization", "Bearer " + token);
}

// grpc.health.v1 status of `service` ("" = the whole server), or -1 when the call failed.
inline int HealthStatus(const std::shared_ptr<grpc::Channel>& ch, const std::string& service = "") {
  auto stub = grpc::health::v1::Health::NewStub(ch);
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 2);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return -1;
  return resp.status();
}

// Polls health until SERVING, or until `timeout` (then false).
inline bool WaitServing(const std::shared_ptr<grpc::Channel>& ch, std::chrono::seconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (HealthStatus(ch) == grpc::health::v1::HealthCheckResponse::SERVING) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace moke::testing
