// `moke-bench load`: N concurrent Ask clients for S seconds, first with no edits running, then while the
// stream's edits are applied (one editor client); prints Ask latency p50/p95/p99 and throughput side by
// side. With --baseline, instead: the no-edit phase against two servers in turns (a batched server and
// one with --max-batch 1), and their throughput ratio in the same run. Bounded: at most kMaxClients
// clients, kMaxSeconds per phase and kMaxRounds rounds, loopback servers only.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "moke/v1/moke.pb.h"

namespace moke::bench {

inline constexpr int kMaxClients = 64;
inline constexpr double kMaxSeconds = 600;
inline constexpr int kMaxRounds = 10;

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
  // Comparison mode: the same no-edit phase against this server too (e.g. one with --max-batch 1), the
  // two alternating for `rounds` rounds in one run; prints both and the throughput ratio.
  std::string baseline;
  int rounds = 1;
};

// Checks the bounds and the address (INVALID_ARGUMENT), then runs both phases.
absl::Status RunLoad(const LoadOptions& options);

absl::Status ValidateLoadOptions(const LoadOptions& options);

}  // namespace moke::bench
