#include "server/auth.h"

namespace moke::server {

absl::Status CheckBearerToken(const std::string_view* authorization, const std::string& expected_token) {
  if (expected_token.empty()) return absl::OkStatus();
  if (authorization == nullptr) return absl::UnauthenticatedError("missing bearer token (authorization metadata)");
  constexpr std::string_view kPrefix = "Bearer ";
  std::string_view v = *authorization;
  if (v.size() < kPrefix.size() || v.substr(0, kPrefix.size()) != kPrefix) {
    return absl::UnauthenticatedError("authorization metadata is not a bearer token");
  }
  v.remove_prefix(kPrefix.size());
  unsigned diff = v.size() != expected_token.size();
  for (size_t i = 0; i < expected_token.size(); ++i) {
    diff |= static_cast<unsigned char>(expected_token[i]) ^ static_cast<unsigned char>(i < v.size() ? v[i] : 0);
  }
  if (diff != 0) return absl::PermissionDeniedError("wrong bearer token");
  return absl::OkStatus();
}

}  // namespace moke::server
