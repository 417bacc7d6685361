// Enforces "one thread at a time" on an object that is documented so: a call that enters while another
// is still inside aborts the process with both names, instead of silently corrupting state.
//
// Thread-safety: that is its purpose; Scope may be created from any thread.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace moke {

class SerialCheck {
 public:
  class Scope {
   public:
    Scope(const SerialCheck& check, const char* what) : check_(check) {
      const char* other = nullptr;
      if (!check_.inside_.compare_exchange_strong(other, what)) {
        std::fprintf(stderr, "fatal: %s called while %s is running on another thread (one thread at a time)\n",
                     what, other);
        std::abort();
      }
    }
    ~Scope() { check_.inside_.store(nullptr); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    const SerialCheck& check_;
  };

 private:
  mutable std::atomic<const char*> inside_{nullptr};
};

}  // namespace moke
