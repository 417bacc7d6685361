// The edit history: every edit the editor has applied, in order, with what the editor derived from it.
//
// Thread-safety: plain data, owned by the editor thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/editor/fact_key.h"
#include "core/editor/scope.h"

namespace moke {

struct HeldEdit {
  std::string question, answer;
  int64_t answer_tokens = 0;              // the answer's length in tokens (where an answer to it ends)
  std::string subject;                    // as given (empty: found by the scope)
  std::vector<std::string> paraphrases;
  // The fact's questions held before in other words (the questions of the edits it superseded, and
  // theirs; at most kMaxEarlierWordings, newest last): taught this answer too, and keys of the fact.
  std::vector<std::string> earlier_wordings;
  std::shared_ptr<const FactKey> key;     // the scope's keys (scope.h)
  int expert = -1;
  uint64_t version = 0;
  bool superseded = false;  // no longer live: a later edit of the same fact replaced it, or it was retracted
  bool retracted = false;   // RetractFact forgot it
  at::Tensor fingerprint;   // [F]
  double delta_trained = 0; // Delta of its expert on it right after training
};

inline constexpr size_t kMaxEarlierWordings = 16;

// The texts an entry's scope keys are built from: its question, subject, paraphrases and earlier wordings.
FactSource FactSourceOf(const HeldEdit& h);

// The questions of the `replaced` entries (and their earlier wordings), oldest first, that are not
// `question`, without repeats: the earlier wordings of the edit that replaces them (the newest
// kMaxEarlierWordings).
std::vector<std::string> EarlierWordings(const std::vector<HeldEdit>& history, const std::vector<size_t>& replaced,
                                         const std::string& question);

// The bytes an entry of the history holds: its tensors (fingerprint, relation keys) and texts.
int64_t HeldEditBytes(const HeldEdit& h);

// Which held edits stay live once an incoming edit is applied: those not superseded already and not
// among the ones it replaces (its re-edits).
class LiveAfter {
 public:
  LiveAfter(const std::vector<HeldEdit>& history, std::vector<size_t> replaced)
      : history_(history), replaced_(std::move(replaced)) {}
  bool operator()(size_t h) const {
    if (history_[h].superseded) return false;
    for (size_t r : replaced_) {
      if (r == h) return false;
    }
    return true;
  }
  const std::vector<size_t>& replaced() const { return replaced_; }

 private:
  const std::vector<HeldEdit>& history_;
  std::vector<size_t> replaced_;
};

}  // namespace moke
