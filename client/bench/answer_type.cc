#include "client/bench/answer_type.h"

#include <cctype>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"

namespace moke::bench {
namespace {

// Words (whole tokens of the lower-cased question, subject removed) that reveal a person answer.
const std::set<std::string, std::less<>>& PersonCues() {
  static const auto* cues = new std::set<std::string, std::less<>>{
      "who",        "whom",       "whose",     "mother",     "father",       "parent",    "parents",
      "spouse",     "wife",       "husband",   "child",      "children",     "son",       "daughter",
      "sibling",    "siblings",   "brother",   "sister",     "founder",      "director",  "directed",
      "author",     "wrote",      "written",   "composer",   "composed",     "architect", "performer",
      "singer",     "artist",     "creator",   "producer",   "screenwriter", "actor",     "actress",
      "stars",      "star",       "cast",      "chairperson", "ceo",         "coach",     "discoverer",
      "inventor",   "editor",     "illustrator", "student",  "teacher",      "advisor",   "partner",
      "lyricist",   "commander",  "lady",      "man",        "woman",        "person",    "king",
      "queen",      "president",  "leader",    "mayor",      "owner",        "grandfather", "grandmother"};
  return *cues;
}

// Words that reveal a place answer.
const std::set<std::string, std::less<>>& PlaceCues() {
  static const auto* cues = new std::set<std::string, std::less<>>{
      "where",     "country",   "countries", "city",     "town",         "village",  "state",
      "province",  "county",    "region",    "continent", "capital",     "location", "located",
      "place",     "birthplace", "headquarters", "river", "mountain",    "island",   "territory",
      "district",  "municipality", "neighborhood", "borough", "nation",  "citizenship", "area",
      "body"};  // "body of water"
  return *cues;
}

const std::regex& YearOnly() {
  static const auto* re = new std::regex(R"(^(1\d{3}|20\d{2})( ?(ad|bc|bce|ce))?$)", std::regex::icase);
  return *re;
}
const std::regex& YearInside() {
  static const auto* re = new std::regex(R"((^|[^\d])(1\d{3}|20\d{2})([^\d]|$))");
  return *re;
}
const std::regex& LeadingNumber() {
  static const auto* re = new std::regex(R"(^[+-]?\d[\d,\.]*(\s|$))");
  return *re;
}

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      cur.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    } else if (!cur.empty()) {
      words.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

std::string RemoveSubject(std::string_view question, std::string_view subject) {
  std::string q(question);
  if (subject.empty()) return q;
  for (size_t pos = q.find(subject); pos != std::string::npos; pos = q.find(subject, pos)) {
    q.replace(pos, subject.size(), " ");
    pos += 1;
  }
  return q;
}

}  // namespace

std::string_view AnswerTypeName(AnswerType type) {
  switch (type) {
    case AnswerType::kYear: return "year";
    case AnswerType::kNumber: return "number";
    case AnswerType::kPerson: return "person";
    case AnswerType::kPlace: return "place";
    case AnswerType::kOther: return "other";
  }
  return "other";
}

AnswerType ClassifyAnswer(std::string_view question, std::string_view subject, std::string_view answer) {
  const std::string a(absl::StripAsciiWhitespace(std::string(answer)));
  const std::vector<std::string> qwords = Words(RemoveSubject(question, subject));
  const auto has_word = [&](const auto& set) {
    for (const auto& w : qwords)
      if (set.count(w)) return true;
    return false;
  };
  static const std::set<std::string, std::less<>> kTimeCues = {"when", "year", "date", "born", "died",
                                                               "founded", "inception", "established"};
  if (std::regex_match(a, YearOnly())) return AnswerType::kYear;
  if (has_word(kTimeCues) && std::regex_search(a, YearInside())) return AnswerType::kYear;
  if (std::regex_search(a, LeadingNumber())) {
    const std::vector<std::string> awords = absl::StrSplit(a, ' ', absl::SkipEmpty());
    if (awords.size() <= 3) return AnswerType::kNumber;
  }
  if (has_word(PersonCues())) return AnswerType::kPerson;
  if (has_word(PlaceCues())) return AnswerType::kPlace;
  return AnswerType::kOther;
}

std::string RelationKey(std::string_view question, std::string_view subject) {
  if (subject.empty() || question.find(subject) == std::string_view::npos) return "";
  std::string out;
  // Replace the subject by a marker, then keep words only.
  std::string q(question);
  for (size_t pos = q.find(subject); pos != std::string::npos; pos = q.find(subject, pos)) {
    constexpr std::string_view kMarker = " SUBJECTMARKER ";
    q.replace(pos, subject.size(), kMarker);
    pos += kMarker.size();
  }
  for (const std::string& w : Words(q)) {
    if (!out.empty()) out.push_back(' ');
    out += (w == "subjectmarker") ? "<s>" : w;
  }
  return out;
}

std::string NormalizeAnswer(std::string_view text) {
  // ASCII only, whatever the process locale: bytes >= 0x80 (UTF-8 letters of names such as "Besançon")
  // are copied as they are and compared byte for byte.
  std::string out;
  bool pending_space = false;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isspace(u)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(absl::ascii_tolower(u));
  }
  // Strip punctuation and quotes at both ends (but keep non-ASCII bytes: they are letters of names).
  const auto is_trim = [](unsigned char u) { return absl::ascii_ispunct(u) || absl::ascii_isspace(u); };
  size_t b = 0, e = out.size();
  while (b < e && is_trim(static_cast<unsigned char>(out[b]))) ++b;
  while (e > b && is_trim(static_cast<unsigned char>(out[e - 1]))) --e;
  return out.substr(b, e - b);
}

}  // namespace moke::bench
