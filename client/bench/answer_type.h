// Answer-type classifier and text helpers for the stream builder and the exact-match metric.
//
// The stream builder draws alternative answers for a question from other records' targets "of the same
// answer type" (REFERENCE section 8). The classifier is deliberately small and deterministic; the rules are
// documented in docs/streams.md and, in order, are:
//   1. year:   the answer is a year (1000-2099, optionally with AD/BC/CE/BCE), or the question asks for a
//              date/time ("when", "year", "date") and the answer contains such a year;
//   2. number: the answer starts with a number (digits with , or .) and has at most three words;
//   3. person: the question (with the subject removed) asks for a person ("who", "mother", "author", ...);
//   4. place:  the question (with the subject removed) asks for a place ("where", "country", "city", ...);
//   5. other:  everything else (families, companies, labels, languages, occupations, ...).
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace moke::bench {

enum class AnswerType { kYear, kNumber, kPerson, kPlace, kOther };

std::string_view AnswerTypeName(AnswerType type);

// Classifies `answer` given the question that asks for it. `subject` (may be empty) is removed from the
// question before looking for cue words, so that a subject such as "The Mother of Tears" does not make
// the question look like it asks for a person.
AnswerType ClassifyAnswer(std::string_view question, std::string_view subject, std::string_view answer);

// The question's wording with the subject replaced by "<s>", lower-cased, punctuation collapsed to single
// spaces: questions that share it ask for the same relation ("what is the date of birth for <s>").
// Empty when the subject is empty or does not occur in the question (no relation is revealed).
std::string RelationKey(std::string_view question, std::string_view subject);

// Lower-cases ASCII letters, trims, collapses runs of whitespace, and strips leading/trailing punctuation
// and quotes. Used to compare answers (duplicates, the true answer, exact match).
std::string NormalizeAnswer(std::string_view text);

}  // namespace moke::bench
