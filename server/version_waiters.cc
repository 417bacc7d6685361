#include "server/version_waiters.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace moke::server {

VersionWaiters::VersionWaiters(size_t max_waiters, std::chrono::milliseconds max_wait)
    : max_waiters_(max_waiters), max_wait_(max_wait) {
  thread_ = std::thread([this] { ExpiryLoop(); });
}

VersionWaiters::~VersionWaiters() { Stop(); }

void VersionWaiters::Wait(uint64_t min_version, Clock::time_point deadline, std::function<void()> ready,
                          std::function<void(absl::Status)> fail) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) {
      refused = absl::UnavailableError("server is shutting down");
    } else if (version_ < min_version) {
      if (waiters_.size() >= max_waiters_) {
        refused = absl::ResourceExhaustedError("too many reads waiting for a version");
      } else {
        const Clock::time_point cap = Clock::now() + max_wait_;
        waiters_.emplace(min_version, Waiter{min_version, std::min(deadline, cap), std::move(ready), std::move(fail)});
        changed_ = true;
        return;
      }
    }
  }
  if (refused.ok()) {
    ready();
  } else {
    fail(refused);
  }
}

void VersionWaiters::AnnounceVersion(uint64_t version) {
  std::vector<Waiter> ready;
  {
    absl::MutexLock lock(&mu_);
    if (version < version_) return;
    version_ = version;
    auto end = waiters_.upper_bound(version);
    for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  for (Waiter& w : ready) w.ready();
}

uint64_t VersionWaiters::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

void VersionWaiters::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void VersionWaiters::ExpiryLoop() {
  for (;;) {
    std::vector<Waiter> expired;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      Clock::time_point earliest = Clock::time_point::max();
      for (const auto& [v, w] : waiters_) earliest = std::min(earliest, w.deadline);
      changed_ = false;
      const absl::Duration timeout = earliest == Clock::time_point::max()
                                         ? absl::Seconds(3600)
                                         : absl::FromChrono(earliest - Clock::now()) + absl::Milliseconds(1);
      mu_.AwaitWithTimeout(absl::Condition(this, &VersionWaiters::Wake), timeout);
      stop = stop_;
      const Clock::time_point now = Clock::now();
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (stop || it->second.deadline <= now) {
          expired.push_back(std::move(it->second));
          it = waiters_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Waiter& w : expired) {
      w.fail(stop ? absl::UnavailableError("server is shutting down")
                  : absl::DeadlineExceededError(absl::StrCat("version ", w.min_version, " was not published in time")));
    }
    if (stop) return;
  }
}

}  // namespace moke::server
