// Form-changing rewordings of a question, for the "Gen. reworded" column (docs/streams.md, "Rewordings").
//
// A rephrase that only swaps a synonym ("launched" for "founded") keeps the question's form; these
// rewordings change it: a question becomes a statement to complete ("What is the position of S?" ->
// "The position of S is", "S's position is"; "Which family does S belong to?" -> "S belongs to the
// family"). A small, fixed rule set keyed on the question's template (the question with the subject
// replaced) covers the common ZsRE templates; a question no rule covers gets none. The subject is kept
// verbatim, so a rewording tests the wording, not the name (aliases test the name).
//
// Also: the numbered paraphrase lists some datasets carry (WikiCF's test_cf-generate-10 `generate_prompt`,
// "1. What is ...?") reduced to usable rewordings.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moke::bench {

// The rewordings of `question` about `subject` by the first rule whose template matches (0, 1 or 2 of
// them, in the rule's order). None when the subject is empty or does not occur in the question.
std::vector<std::string> RewordQuestion(std::string_view question, std::string_view subject);

// From an LLM-written numbered list ("1. What is ...?", "2) ..."): the items that are numbered, mention
// `subject` verbatim as a whole word (not inside a longer one), hold no template placeholder ('['), are at
// most 200 bytes, and differ from `question` (compared as NormalizeAnswer does). The numbering is
// stripped; the list's order is kept, repeats dropped.
std::vector<std::string> UsableParaphrases(const std::vector<std::string>& items, std::string_view question,
                                           std::string_view subject);

}  // namespace moke::bench
