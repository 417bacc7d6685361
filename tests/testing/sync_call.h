// Calls an asynchronous Submit*(..., done) and waits for its one `done`: engine tests without gRPC.
#pragma once

#include <future>
#include <utility>

#include "absl/status/statusor.h"

namespace moke::testing {

// `submit` receives the callback to pass as `done`; returns what it was called with.
template <typename T, typename Submit>
absl::StatusOr<T> SyncCall(Submit submit) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<T>>>();
  std::future<absl::StatusOr<T>> result = promise->get_future();
  submit([promise](absl::StatusOr<T> r) { promise->set_value(std::move(r)); });
  return result.get();
}

}  // namespace moke::testing
