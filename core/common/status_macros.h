// Small helpers for absl::Status plumbing inside core/.
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MOKE_CONCAT_INNER(a, b) a##b
#define MOKE_CONCAT(a, b) MOKE_CONCAT_INNER(a, b)

#define MOKE_RETURN_IF_ERROR(expr)                 \
  do {                                             \
    ::absl::Status moke_status_ = (expr);          \
    if (!moke_status_.ok()) return moke_status_;   \
  } while (0)

#define MOKE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define MOKE_ASSIGN_OR_RETURN(lhs, expr) \
  MOKE_ASSIGN_OR_RETURN_IMPL(MOKE_CONCAT(moke_statusor_, __LINE__), lhs, expr)

namespace moke {

// Runs `fn` and turns any exception (c10::Error from LibTorch above all) into an absl::Status, so that
// no exception leaves core/. `what` names the operation for the message.
template <typename Fn>
absl::Status GuardTorch(const char* what, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    std::string msg = e.what();
    // c10::Error messages carry a long backtrace after the first line: keep the first line only.
    if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
    return absl::InternalError(std::string(what) + ": " + msg);
  }
}

}  // namespace moke
