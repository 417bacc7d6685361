// The scope decision: which held fact, if any, a prompt asks about. One place decides it, for Ask (is
// this question edited knowledge, and which edit?) and for EditFact (does this edit restate a held fact,
// so that it replaces the old answer?).
//
// A fact is keyed by what it is about and what it asks, each matched on its own (issue 14):
//   - the subject, as text: its name and the aliases learned from paraphrases, found in the prompt by
//     character trigrams (subject.h), never as the part of a longer name (CutsAName). A prompt about
//     another subject never matches, however alike the wording;
//   - the relation: the prompt with the subject cut out. The same template word for word is the same
//     relation (then the subject may be spelled differently: "Leo DiCaprio", or named by initials, a short
//     given name, a title: NameVariant); a rewording must share a relation word (synonyms count as one)
//     and not put another noun in the relation's place (CompareRelations), and its activation key (the
//     edit layer's mean input over the prompt without the subject) must be near the fact's.
// When in doubt the prompt is left alone: answering an unedited fact with someone else's answer is worse
// than missing a rewording.
//
// Thread-safety: FactKey is immutable once built (shared by the editor and published versions); the
// functions are pure.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/editor/subject.h"

namespace moke {

struct ScopeThresholds {
  double subject_min = 0.6;         // subject found in a reworded prompt (trigram Dice)
  double alias_min = 0.5;           // subject spelled otherwise in the fact's own template
  double relation_min = 0.5;        // relation key cosine of a rewording that shares a relation word
  double bare_relation_min = 0.7;   // ... of a rewording without relation words (only question words)
  double wording_min = 0.8;         // a fact without a subject: the prompt's wording against its question
};

struct ReEditThresholds {
  double subject_min = 0.8;   // the incoming subject against a held subject or alias
  double relation_min = 0.5;  // relation key cosine of a reworded relation
};

// One way of asking a held fact: a relation template and its activation key.
struct RelationKey {
  std::vector<std::string> words;  // TemplateWords, with "<s>" where the subject stands
  at::Tensor key;                  // [F] L2-normalised
};

struct FactKey {
  std::string question;
  std::string subject;                        // as given or found; empty: keyed by the whole question
  std::vector<std::string> names;             // the subject, then aliases learned from paraphrases
  std::vector<std::vector<uint32_t>> name_trigrams;
  std::vector<RelationKey> relations;         // the question's, then the paraphrases'
  std::vector<uint32_t> question_trigrams;    // for a fact without a subject
};

// The prompt being decided: its text and, on demand, its relation key with a span cut out.
struct ScopeQuery {
  const std::string& text;
  std::function<at::Tensor(const TextSpan& subject)> relation_key;
};

struct FactMatch {
  bool in_scope = false;
  bool same_template = false;  // the fact's relation word for word
  double subject = 0;          // subject score (Dice)
  double relation = 0;         // relation key cosine (1 for the same template)
  TextSpan span;               // where the subject stands in the prompt
};

FactMatch MatchFact(const FactKey& key, const ScopeQuery& query, const ScopeThresholds& t);

struct ScopeDecision {
  int64_t index = -1;  // the fact the prompt asks about (-1: none)
  FactMatch match;     // its match (or, with index -1, the best subject score seen, for diagnostics)
};
// The best in-scope fact among `facts` (same template first, then subject + relation score).
ScopeDecision DecideScope(const std::vector<const FactKey*>& facts, const ScopeQuery& query,
                          const ScopeThresholds& t);

// True when `incoming` (a new edit's key) restates `held`: its subject is a held name and its relation
// is the held one (the same template, or a rewording whose key is within the re-edit threshold).
bool SameFact(const FactKey& held, const FactKey& incoming, const ReEditThresholds& t);

}  // namespace moke
