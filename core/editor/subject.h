// What a question is about, as text: finding a subject in a question, matching a held subject inside
// another question (the same name, or a close spelling of it: "Leo DiCaprio", "Di Caprio"), and the
// question's relation template (the question with the subject cut out).
//
// Matching is by character trigrams of the normalised text (lower-case ASCII letters and digits, Latin
// letters without their marks, other UTF-8 bytes kept, everything else dropped): Dice = 2|A n B| / (|A| + |B|).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace moke {

// Lower-cased letters and digits of `s`, nothing else; a Latin letter with marks (U+00C0..U+017F) is its
// base letter ("Räikkönen" -> "raikkonen"), other non-ASCII bytes are kept.
std::string NormalizeForMatch(const std::string& s);

// Sorted, distinct trigram codes of NormalizeForMatch(s) (one code for texts shorter than 3).
std::vector<uint32_t> Trigrams(const std::string& s);
// How many codes two sorted, distinct trigram lists share.
size_t CommonTrigrams(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);
double Dice(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);

// True when `a` and `b` hold the same numbers (runs of digits, in any order): names that differ in a
// number ("2008 United States presidential election" / "2020 ...", "93rd Academy Awards" / "Academy
// Award for Best Picture") are other entities however alike their letters.
bool SameNumbers(const std::string& a, const std::string& b);

// A byte range of a question.
struct TextSpan {
  size_t begin = 0, end = 0;
  double score = 0;  // Dice with the subject it was matched against
  bool empty() const { return end <= begin; }
};

// The run of words in `question` most like `subject` (windows of up to its word count + 1 words,
// trailing punctuation and a possessive "'s" left out of the span); score 0 when nothing is alike.
TextSpan FindSubject(const std::string& question, const std::string& subject);
// The same with the subject's trigrams and word count computed once.
TextSpan FindSubject(const std::string& question, const std::vector<uint32_t>& subject_trigrams, size_t subject_words);
size_t WordCount(const std::string& s);

// True when `span` of `text` stops inside a name: the word right after it, or right before it (unless that
// one opens the text or is a title), starts with a capital letter, a digit or a letter outside ASCII
// (punctuation such as a dash does not count).
bool CutsAName(const std::string& text, const TextSpan& span);

// True when `text` names `name` in a way trigrams miss: three of its words or more in any order, without
// its number ("coup d'état in Myanmar" for "2021 Myanmar coup d'état"); or, with the same numbers, its
// initials ("RFK" for "Robert F. Kennedy"); the name before a comma ("Prince Harry" for "Prince Harry,
// Duke of Sussex"); the name with words left out or added that keeps its last word ("Ida" / "Hurricane
// Ida"); the same last word after a given name that is the same by its usual short form ("Tommy Fury" /
// "Thomas Fury"), starts alike ("Steve Kerr" / "Stephen Douglas Kerr"), is its initial ("R. Nixon") or a
// title ("President Nixon", "Dr. Grady"); a country's other name or ISO code ("UA" for "Ukraine",
// CountryNames). Only for a prompt in the fact's own template, where the rest of
// the wording already matches (scope.h).
bool NameVariant(const std::string& name, const std::string& text);

// A subject for a question that names none: the longest run of capitalised words or numbers (joined by
// "of", "the", "de", ... inside the run), not counting a capitalised question word or article that starts
// the question; empty when there is none.
std::string GuessSubject(const std::string& question);

// The question's relation: NormalizeForMatch word by word with the span replaced by "<s>"
// ("The name of the mother of Leonardo DiCaprio is" -> "the name of the mother of <s> is"). A possessive
// after the subject goes with it ("Pavel Bure's position" -> "<s> position").
std::string RelationTemplate(const std::string& question, const TextSpan& subject);
// The same as words: {"the", "name", ..., "<s>", "is"}.
std::vector<std::string> TemplateWords(const std::string& question, const TextSpan& subject);

// When `question` is `relation` word for word with something else where "<s>" stands, that something
// (a byte span of `question`); empty otherwise. ("The name of the mother of Leo DiCaprio is" against
// "the name of the mother of <s> is" -> "Leo DiCaprio".)
TextSpan AlignToTemplate(const std::string& question, const std::vector<std::string>& relation);
// The same with the question's words split and normalised once (WordsOf), for matching many templates.
struct PromptWords {
  std::vector<TextSpan> spans;    // words with something left after NormalizeForMatch
  std::vector<std::string> norm;  // NormalizeForMatch of each
};
PromptWords WordsOf(const std::string& question);
TextSpan AlignToTemplate(const std::string& question, const PromptWords& words, const std::vector<std::string>& relation);

// How two relation templates compare, by their relation words (content words, lightly stemmed; not
// question words, articles, prepositions or forms of "to be"):
//   kDifferent: they name different relations: no relation word in common, one block of relation words
//               put in place of another in an otherwise equal template ("place of birth" / "place of
//               death"), or one passive and the other not ("follows" / "is followed by");
//   kShared:    a relation word in common (a rewording);
//   kBare:      one of them has no relation word ("Who is <s>?"): they share a question word, and only
//               the activation keys can tell more.
enum class RelationVerdict { kDifferent, kShared, kBare };
RelationVerdict CompareRelations(const std::vector<std::string>& a, const std::vector<std::string>& b);

}  // namespace moke
