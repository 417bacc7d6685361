// Training rows for one edit: the bare question plus, with augmentation, the question after short
// prefixes the model writes itself (the peer's 10 rows) and a copy with subject noise (the paper's:
// a middle word of the subject dropped, or a title added). REFERENCE section 4.
//
// Thread-safety: immutable after Create; Rows() draws from the caller's generator.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/model/llama_model.h"

namespace moke {

// One right-paddable training row: [BOS, (prefix,) question tokens, answer tokens].
struct TrainingRow {
  std::vector<int64_t> ids;
  int64_t q_begin = 0, q_end = 0;  // the question's tokens
  int64_t answer_begin = 0;        // first answer token (ids.size() when there is none)
};

// The model's own greedy continuation of `seed` (at most `max_new_tokens`), seed included.
std::string ModelContinuation(const LlamaModel& model, const std::string& seed, int max_new_tokens);

// The subject the paper's noise perturbs: the longest run of capitalised words after the first word
// (e.g. "IAAF Combined Events Challenge"), or empty. Simpler than subject.h's GuessSubject (which the
// scope uses) and kept as it is: the training rows, and so the paper profile's numbers, depend on it.
std::string NoiseSubject(const std::string& question);

class Augmenter {
 public:
  // Generates up to `num_prefixes` (<= 10) prefixes with the model: 5 of <= 5 new tokens, 5 of <= 10.
  static Augmenter Create(std::shared_ptr<const LlamaModel> model, int num_prefixes);

  // Rows for `question` -> `answer` tokens. With `augment` the prefixed rows and the subject-noise row
  // follow the bare one; the noise draws from `rng`.
  std::vector<TrainingRow> Rows(const std::string& question, const std::vector<int64_t>& answer, bool augment,
                                std::mt19937_64& rng) const;
  // Tokens the longest prefix adds to a question (with its joining space): for the context-window check.
  int64_t LongestPrefixTokens() const { return longest_prefix_tokens_; }

 private:
  std::shared_ptr<const LlamaModel> model_;
  struct Prefix {
    std::string text;
    int64_t prompt_tokens = 0;  // BOS + the prefix's tokens: where the question starts in the row
  };
  std::vector<Prefix> prefixes_;
  int64_t longest_prefix_tokens_ = 0;
};

}  // namespace moke
