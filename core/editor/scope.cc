#include "core/editor/scope.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <utility>

namespace moke {

namespace {

// Trigrams a name shares with the prompt, over the name's own: a window of the prompt can reach Dice t
// with the name only if this is at least t / 2, so names below it are not searched.
double Containment(const std::vector<uint32_t>& name, const std::vector<uint32_t>& prompt) {
  if (name.empty()) return 0;
  return static_cast<double>(CommonTrigrams(name, prompt)) / static_cast<double>(name.size());
}

// How well `text` names one of the fact's names (0 when the numbers in them differ).
double BestNameScore(const FactKey& key, const std::string& text) {
  const std::vector<uint32_t> t = Trigrams(text);
  double best = 0;
  for (size_t i = 0; i < key.names.size(); ++i) {
    if (SameNumbers(key.names[i], text)) best = std::max(best, Dice(key.name_trigrams[i], t));
  }
  return best;
}

bool Better(const FactMatch& a, const FactMatch& b) {
  if (a.same_template != b.same_template) return a.same_template;
  return a.subject + a.relation > b.subject + b.relation;
}

// MatchFact with the prompt's trigrams (`prompt` = Trigrams(query.text)) and words (WordsOf) computed by
// the caller.
FactMatch MatchFact(const FactKey& key, const ScopeQuery& query, const std::vector<uint32_t>& prompt,
                    const PromptWords& words, const ScopeThresholds& t) {
  FactMatch best;
  if (key.names.empty()) {  // no subject: the wording itself, closely
    best.subject = Dice(key.question_trigrams, prompt);
    best.in_scope = best.subject >= t.wording_min;
    return best;
  }
  // The fact's own template word for word: the subject may be spelled otherwise, even with few trigrams
  // in common (NameVariant: "RFK").
  for (const RelationKey& r : key.relations) {
    TextSpan span = AlignToTemplate(query.text, words, r.words);
    if (span.empty()) continue;
    const std::string name = query.text.substr(span.begin, span.end - span.begin);
    double s = BestNameScore(key, name);
    for (size_t i = 0; s < t.alias_min && i < key.names.size(); ++i)
      if (NameVariant(key.names[i], name)) s = t.alias_min;
    if (s >= t.alias_min && s > best.subject) {
      best = FactMatch{true, true, s, 1.0, span};
    }
  }
  if (best.in_scope) return best;
  bool near = false;
  for (const auto& n : key.name_trigrams) near = near || Containment(n, prompt) >= std::min(t.alias_min, t.subject_min) / 2;
  if (!near) return best;
  // A rewording: find the subject, then compare what is asked.
  TextSpan span;
  for (size_t i = 0; i < key.names.size(); ++i) {
    TextSpan s = FindSubject(query.text, key.name_trigrams[i], WordCount(key.names[i]));
    if (!SameNumbers(key.names[i], query.text.substr(s.begin, s.end - s.begin))) s.score = 0;
    // Part of a longer name is another entity: "canton of" in "canton of Bagnères-de-Bigorre" is not
    // "canton of Orcières", "Frédéric" in "Frédéric Ocqueteau" is not "Frederic Piesch".
    if (CutsAName(query.text, s)) s.score = 0;
    if (s.score > span.score) span = s;
  }
  best.subject = span.score;
  best.span = span;
  if (span.score < t.subject_min) return best;
  const std::vector<std::string> asked = TemplateWords(query.text, span);
  at::Tensor q;
  for (const RelationKey& r : key.relations) {
    const RelationVerdict v = CompareRelations(r.words, asked);
    if (v == RelationVerdict::kDifferent) continue;
    if (!q.defined()) q = query.relation_key(span);
    const double cos = at::dot(q, r.key).item<double>();
    const double floor = v == RelationVerdict::kShared ? t.relation_min : t.bare_relation_min;
    if (cos >= floor && (!best.in_scope || cos > best.relation)) {
      best.in_scope = true;
      best.relation = cos;
    } else if (!best.in_scope) {
      best.relation = std::max(best.relation, cos);
    }
  }
  return best;
}

}  // namespace

FactMatch MatchFact(const FactKey& key, const ScopeQuery& query, const ScopeThresholds& t) {
  return MatchFact(key, query, Trigrams(query.text), WordsOf(query.text), t);
}

ScopeDecision DecideScope(const std::vector<const FactKey*>& facts, const ScopeQuery& query,
                          const ScopeThresholds& t) {
  // What depends only on the prompt is computed once, not once per held fact: its trigrams and words, and its
  // relation key for each subject span a fact found in it (one model pass each).
  const std::vector<uint32_t> prompt = Trigrams(query.text);
  const PromptWords words = WordsOf(query.text);
  std::map<std::pair<size_t, size_t>, at::Tensor> keys;
  const ScopeQuery once{query.text, [&](const TextSpan& s) {
                          at::Tensor& k = keys[{s.begin, s.end}];
                          if (!k.defined()) k = query.relation_key(s);
                          return k;
                        }};
  ScopeDecision d;
  for (size_t i = 0; i < facts.size(); ++i) {
    FactMatch m = MatchFact(*facts[i], once, prompt, words, t);
    if (m.in_scope) {
      if (d.index < 0 || Better(m, d.match)) {
        d.index = static_cast<int64_t>(i);
        d.match = m;
      }
    } else if (d.index < 0 && m.subject > d.match.subject) {
      d.match = m;
    }
  }
  return d;
}

bool SameFact(const FactKey& held, const FactKey& incoming, const ReEditThresholds& t) {
  if (held.question == incoming.question) return true;
  if (held.names.empty() || incoming.names.empty()) {
    return Dice(held.question_trigrams, incoming.question_trigrams) >= t.subject_min;
  }
  double subject = 0;
  for (size_t i = 0; i < held.names.size(); ++i) {
    for (size_t j = 0; j < incoming.names.size(); ++j) {
      if (SameNumbers(held.names[i], incoming.names[j])) {
        subject = std::max(subject, Dice(held.name_trigrams[i], incoming.name_trigrams[j]));
      }
    }
  }
  if (subject < t.subject_min) return false;
  for (const RelationKey& a : held.relations) {
    for (const RelationKey& b : incoming.relations) {
      if (a.words == b.words) return true;
      if (CompareRelations(a.words, b.words) == RelationVerdict::kShared &&
          at::dot(a.key, b.key).item<double>() >= t.relation_min) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace moke
