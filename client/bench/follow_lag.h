// `moke-bench follow-lag`: how long a follower (moke-server --follow) takes to reach the version of an
// edit the editor just acknowledged. Sends N edits to the editor one at a time; after each EditFact
// returns, polls the follower's GetStatus (every millisecond) until it reports that version, and records
// the time from the acknowledgement. Prints p50/p95/max. Bounded: at most kMaxFollowLagEdits edits, each
// wait at most wait_s; loopback servers only.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace moke::bench {

inline constexpr int kMaxFollowLagEdits = 1000;

struct FollowLagOptions {
  std::string editor, follower;  // loopback addresses
  std::string token;             // the editor's edit token
  int edits = 20;
  double wait_s = 30;            // a follower that does not catch up in this long is an error
  std::string out_dir;           // "" = no follow_lag.json
};

absl::Status RunFollowLag(const FollowLagOptions& options);

}  // namespace moke::bench
