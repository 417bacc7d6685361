// Bearer tokens for the RPCs that need one. Thread-safe: pure functions of the request metadata (and a
// log line).
//
// Which RPCs need which token is the service's choice (service_impl.h): the edit token for the RPCs that
// change knowledge, the edit or the read token for the edit history.
#pragma once

#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace moke::server {

// `authorization`: every value of the request's "authorization" metadata (gRPC keeps repeated keys).
// `accepted`: the tokens that grant the call; empty ones are ignored, and when none is left auth is off.
// OK when auth is off, or when there is exactly one header, "Bearer <token>" with an accepted token (the
// scheme in any letter case, RFC 7235). UNAUTHENTICATED when the header is missing, repeated, or not a
// bearer token; PERMISSION_DENIED when the token is wrong. The comparison takes the same time wherever a
// wrong token differs. Messages never contain a token.
absl::Status CheckBearerToken(const std::vector<std::string_view>& authorization,
                              const std::vector<std::string_view>& accepted);

// CheckBearerToken; a refusal is also logged as a warning naming the RPC, the peer and the reason.
absl::Status AuthorizeCall(std::string_view rpc, std::string_view peer,
                           const std::vector<std::string_view>& authorization,
                           const std::vector<std::string_view>& accepted);

}  // namespace moke::server
