// The edit history: every edit the editor has applied, in order, with what the editor derived from it.
//
// Thread-safety: plain data, owned by the editor thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace moke {

struct HeldEdit {
  std::string question, answer;
  int expert = -1;
  uint64_t version = 0;
  bool superseded = false;  // a later edit of the same question replaced it
  at::Tensor a;             // [1, T, F] the question's down-projection input
  at::Tensor fingerprint;   // [F]
  double delta_trained = 0; // Delta of its expert on it right after training
};

// True when held edit `h` stays live once an edit of `incoming_question` is applied: not superseded
// already, and not the same question (whose old answer the new edit replaces).
inline bool StaysLive(const HeldEdit& h, const std::string& incoming_question) {
  return !h.superseded && h.question != incoming_question;
}

}  // namespace moke
