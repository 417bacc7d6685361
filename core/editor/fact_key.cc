#include "core/editor/fact_key.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/editor/activations.h"

namespace moke {

at::Tensor RelationKeyOf(const LlamaModel& model, const std::string& text, const at::Tensor& a, const TextSpan& subject) {
  const int64_t t = a.size(1);
  std::vector<bool> keep(static_cast<size_t>(t), true);
  keep[0] = false;  // BOS
  if (!subject.empty()) {
    std::string before = text.substr(0, subject.begin);
    while (!before.empty() && before.back() == ' ') before.pop_back();
    const int64_t first = before.empty() ? 1 : static_cast<int64_t>(model.EncodePrompt(before).size());
    const int64_t end = std::min<int64_t>(t, model.EncodePrompt(text.substr(0, subject.end)).size());
    for (int64_t i = std::max<int64_t>(first, 1); i < end; ++i) keep[static_cast<size_t>(i)] = false;
  }
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < t; ++i) {
    if (keep[static_cast<size_t>(i)]) rows.push_back(i);
  }
  if (rows.empty()) return Fingerprint(a);
  at::Tensor idx = at::tensor(rows, at::TensorOptions().dtype(at::kLong).device(a.device()));
  at::Tensor pooled = a[0].index_select(0, idx).mean(0).to(at::kFloat);
  return pooled / pooled.norm().clamp_min(1e-12);
}

ScopeDecision AskedFact(const LlamaModel& model, const std::string& question, const at::Tensor& a,
                        const std::vector<const FactKey*>& facts, const ScopeThresholds& t) {
  const ScopeQuery q{question, [&](const TextSpan& span) { return RelationKeyOf(model, question, a, span); }};
  return DecideScope(facts, q, t);
}

ScopeThresholds ScopeThresholdsOf(const EditorOptions& o) {
  return ScopeThresholds{o.scope_subject_min, o.scope_alias_min, o.scope_relation_min, o.scope_bare_relation_min,
                         o.reedit_subject_min};
}

std::string SubjectOf(const std::string& question, const std::string& given) {
  return given.empty() ? GuessSubject(question) : given;
}

std::shared_ptr<const FactKey> BuildFactKey(const LlamaModel& model, int64_t layer, const FactSource& source,
                                            const at::Tensor& question_a, const ScopeThresholds& t) {
  auto key = std::make_shared<FactKey>();
  key->question = source.question;
  key->question_trigrams = Trigrams(source.question);
  key->subject = SubjectOf(source.question, source.subject);
  if (key->subject.empty()) return key;
  auto add_name = [&](const std::string& name) {
    if (std::find(key->names.begin(), key->names.end(), name) != key->names.end()) return;
    key->names.push_back(name);
    key->name_trigrams.push_back(Trigrams(name));
  };
  add_name(key->subject);
  const size_t at = source.question.find(key->subject);
  const TextSpan span{at, at + key->subject.size(), 1.0};
  key->relations.push_back(
      {TemplateWords(source.question, span), RelationKeyOf(model, source.question, question_a, span)});
  for (const std::string& p : source.paraphrases) {
    TextSpan s = AlignToTemplate(p, key->relations[0].words);
    if (!s.empty()) {  // the question's own relation: the span names the subject, perhaps otherwise
      add_name(p.substr(s.begin, s.end - s.begin));
      continue;
    }
    s = FindSubject(p, key->name_trigrams[0], WordCount(key->subject));
    if (s.score < t.subject_min) {
      const std::string guess = GuessSubject(p);
      const size_t g = guess.empty() ? std::string::npos : p.find(guess);
      if (g == std::string::npos) continue;
      add_name(guess);
      s = TextSpan{g, g + guess.size(), 1.0};
    }
    key->relations.push_back({TemplateWords(p, s), RelationKeyOf(model, p, ActivationsOf(model, layer, p).a, s)});
  }
  return key;
}

}  // namespace moke
