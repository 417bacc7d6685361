// What an edit trains besides itself: earlier edits of the chosen expert, rehearsed so that the expert
// keeps them (retention, beyond the paper), and one replayed edit of another expert for the memory loss
// (the paper's replay buffer, Eq. 6 and appendix B.2).
//
// Thread-safety: not thread-safe; owned by the editor thread.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/editor/held_edit.h"

namespace moke {

// Live edits of `expert` to rehearse with an incoming edit: at most `retention`, the most recent half of
// that budget, then a seeded draw from the older ones. Empty when retention is 0.
std::vector<size_t> PlanRehearsal(const std::vector<HeldEdit>& history, int expert, const LiveAfter& live,
                                  int retention, std::mt19937_64& rng);

// The wording a rehearsed edit is trained on: its question, or (drawn from `rng`, one row per rehearsal)
// one of its earlier wordings when it has any; no draw when it has none.
const std::string& RehearsedWording(const HeldEdit& held, std::mt19937_64& rng);

class ReplayBuffer {
 public:
  struct Entry {
    size_t edit;   // index into the history
    int expert;
    at::Tensor a;  // [1, T, F] the edit's question activations: the buffer alone keeps them
  };
  explicit ReplayBuffer(int capacity = 0) : capacity_(capacity) {}

  // A slot holding an edit of another expert than `expert` that stays live, drawn from `rng`; none when
  // there is no such entry.
  std::optional<size_t> Pick(int expert, const LiveAfter& live, std::mt19937_64& rng) const;
  // After a successful edit: an entry sampled while the buffer was full is deleted (the paper's rule), and
  // the new edit is added with its activations `a` (the oldest entry makes room).
  void Commit(std::optional<size_t> picked, size_t edit, int expert, at::Tensor a = {});

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }
  int size() const { return static_cast<int>(entries_.size()); }
  void Restore(std::vector<Entry> entries) { entries_ = std::move(entries); }

 private:
  int capacity_;
  std::vector<Entry> entries_;
};

}  // namespace moke
