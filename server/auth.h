// Bearer-token check for the mutating RPCs. Pure function of the request metadata: thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace moke::server {

// `authorization` is the request's "authorization" metadata value, or nullptr when absent.
// OK when `expected_token` is empty (auth off) or the header is "Bearer <expected_token>";
// UNAUTHENTICATED when the header is missing or not a bearer token; PERMISSION_DENIED when the token is
// wrong. The comparison takes the same time for every token of the same length.
absl::Status CheckBearerToken(const std::string_view* authorization, const std::string& expected_token);

}  // namespace moke::server
