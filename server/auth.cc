#include "server/auth.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "spdlog/spdlog.h"

namespace moke::server {

namespace {

// Same time for every `given` of a length; 0 when equal.
unsigned Differs(std::string_view given, std::string_view expected) {
  unsigned diff = given.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i]) ^ static_cast<unsigned char>(i < given.size() ? given[i] : 0);
  }
  return diff;
}

}  // namespace

absl::Status CheckBearerToken(const std::vector<std::string_view>& authorization,
                              const std::vector<std::string_view>& accepted) {
  if (std::all_of(accepted.begin(), accepted.end(), [](std::string_view t) { return t.empty(); })) {
    return absl::OkStatus();
  }
  if (authorization.empty()) return absl::UnauthenticatedError("missing bearer token (authorization metadata)");
  if (authorization.size() > 1) {
    return absl::UnauthenticatedError("more than one authorization header; send exactly one");
  }
  std::string_view v = authorization[0];
  constexpr std::string_view kScheme = "bearer";
  const bool bearer = v.size() > kScheme.size() && v[kScheme.size()] == ' ' &&
                      std::equal(kScheme.begin(), kScheme.end(), v.begin(),
                                 [](char want, char got) { return absl::ascii_tolower(got) == want; });
  if (!bearer) {
    return absl::UnauthenticatedError("authorization metadata is not a bearer token");
  }
  v.remove_prefix(kScheme.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  unsigned match = 0;
  for (std::string_view t : accepted) {
    if (!t.empty()) match |= Differs(v, t) == 0;
  }
  if (!match) return absl::PermissionDeniedError("wrong bearer token");
  return absl::OkStatus();
}

absl::Status AuthorizeCall(std::string_view rpc, std::string_view peer,
                           const std::vector<std::string_view>& authorization,
                           const std::vector<std::string_view>& accepted) {
  absl::Status s = CheckBearerToken(authorization, accepted);
  if (!s.ok()) spdlog::warn("refused {} from {}: {}", rpc, peer, std::string(s.message()));
  return s;
}

}  // namespace moke::server
