// The pool of prompts known to be unrelated to the edits (the paper's x_o, Eq. 2 and 5): the model's own
// short continuations of generic seeds, then prompts supplied with edits, kept in a bounded ring (the
// oldest is replaced first). Their fingerprints are the scope decision's negatives.
//
// Thread-safety: not thread-safe; owned by the editor thread (published versions copy the fingerprints).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/model/llama_model.h"

namespace moke {

class UnrelatedPool {
 public:
  static constexpr size_t kMaxSupplied = 256;

  struct Entry {
    std::string text;
    at::Tensor a;   // [1, T, F] at the edit layer
    at::Tensor fp;  // [F]
  };

  // Builds the model's own part of the pool (deterministic: greedy decoding).
  static UnrelatedPool Create(std::shared_ptr<const LlamaModel> model, int64_t layer);

  Entry Make(const std::string& text) const;
  // The held supplied entry for `text`, else Make(text): a prompt's activations are computed once.
  Entry Get(const std::string& text) const;
  // Adds a supplied prompt (an entry from Get) unless it is already held (ring of kMaxSupplied).
  void AddSupplied(Entry entry);
  // Activations of up to `n` entries in a seeded order (x_o when an edit supplies none).
  std::vector<at::Tensor> Sample(size_t n, std::mt19937_64& rng) const;
  at::Tensor Fingerprints() const;  // [P, F]

  // For snapshots: the supplied prompts in ring order and the next ring position.
  std::vector<std::string> supplied() const;
  size_t next_supplied() const { return next_supplied_; }
  // Replaces the supplied part (the generated part is the model's and stays).
  void RestoreSupplied(const std::vector<std::string>& texts, size_t next);

 private:
  std::shared_ptr<const LlamaModel> model_;
  int64_t layer_ = 0;
  std::vector<Entry> entries_;  // [0, generated_) the model's own, then the supplied ring
  size_t generated_ = 0;
  size_t next_supplied_ = 0;
};

}  // namespace moke
