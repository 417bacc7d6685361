// `moke-bench load`: N concurrent Ask clients for S seconds, first with no edits running, then while the
// stream's edits are applied (one editor client); prints Ask latency p50/p95/p99 and throughput side by
// side. Bounded: at most kMaxClients clients and kMaxSeconds per phase, loopback servers only.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "moke/v1/moke.pb.h"

namespace moke::bench {

inline constexpr int kMaxClients = 64;
inline constexpr double kMaxSeconds = 600;

struct LoadOptions {
  std::string server;          // must be a loopback address
  std::string token;
  int clients = 4;
  double seconds = 10;         // per phase
  std::string stream_path;     // "" = no second phase
  std::string name;            // request-id prefix ("" = the stream's file stem)
  int max_new_tokens = 8;
  moke::v1::RoutingMode routing = moke::v1::ROUTING_DEFAULT;
  std::string out_dir;         // "" = no load.json
  double connect_timeout_s = 30;
  double edit_timeout_s = 600;
  bool progress = true;
};

// Checks the bounds and the address (INVALID_ARGUMENT), then runs both phases.
absl::Status RunLoad(const LoadOptions& options);

absl::Status ValidateLoadOptions(const LoadOptions& options);

}  // namespace moke::bench
