// Building the scope keys of an edit (scope.h) from its question, subject and paraphrases: the names
// (subject and aliases), the relation templates and their activation keys at the edit layer.
//
// Thread-safety: pure functions over an immutable model.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "core/editor/editor_options.h"
#include "core/editor/scope.h"
#include "core/model/llama_model.h"

namespace moke {

// The relation key of `text`: the mean of its activations `a` [1, T, F] over every token but BOS and the
// subject's, L2-normalised [F] (the whole prompt's mean when nothing else is left).
at::Tensor RelationKeyOf(const LlamaModel& model, const std::string& text, const at::Tensor& a, const TextSpan& subject);

struct FactSource {
  std::string question;
  std::string subject;  // empty: found in the question (GuessSubject), else none
  std::vector<std::string> paraphrases;
};

// The key of a fact; `question_a` is the question's activations [1, T, F] at `layer`. A paraphrase adds
// its relation; one that names the subject otherwise in the question's own template adds that name as an
// alias, and one that names no known subject adds the name GuessSubject finds in it.
std::shared_ptr<const FactKey> BuildFactKey(const LlamaModel& model, int64_t layer, const FactSource& source,
                                            const at::Tensor& question_a, const ScopeThresholds& t);

// The held fact `question` asks about (DecideScope with the question's relation keys computed from its
// activations `a` [1, T, F] at the edit layer).
ScopeDecision AskedFact(const LlamaModel& model, const std::string& question, const at::Tensor& a,
                        const std::vector<const FactKey*>& facts, const ScopeThresholds& t);

// The fact gate's thresholds from the settings.
ScopeThresholds ScopeThresholdsOf(const EditorOptions& o);

// The subject an edit is keyed on: `given` when set, else the one GuessSubject finds (maybe empty).
std::string SubjectOf(const std::string& question, const std::string& given);

}  // namespace moke
