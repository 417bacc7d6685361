// The one place where absl::Status becomes grpc::Status. Codes map one to one (their numbers agree);
// messages longer than kMaxStatusMessageBytes are truncated (with a marker) so a core error carrying a
// large payload cannot blow up a response trailer.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace moke::server {

inline constexpr size_t kMaxStatusMessageBytes = 1024;

grpc::Status ToGrpcStatus(const absl::Status& status);
// The other way, for the server's own client calls (a follower's calls to its editor).
absl::Status FromGrpcStatus(const grpc::Status& status);

// Lower-case code name for metric labels ("ok", "invalid_argument", ...).
const char* StatusCodeLabel(absl::StatusCode code);

}  // namespace moke::server
