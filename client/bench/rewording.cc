#include "client/bench/rewording.h"

#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "client/bench/answer_type.h"

namespace moke::bench {
namespace {

// One rule: a template of the question (ECMAScript regex, case-insensitive, over the question with the
// subject replaced by "<S>", trailing '?' dropped and spaces collapsed) and up to two rewordings, in which
// {1}, {2} are the template's groups and <S> the subject. The first matching rule wins, so specific
// templates come before general ones. docs/streams.md lists the same rules with examples.
struct Rule {
  const char* pattern;
  std::vector<const char*> rewordings;
};

const std::vector<Rule>& Rules() {
  static const auto* rules = new std::vector<Rule>{
      // WikiCF's cloze prompts ("The name of the mother of S is").
      {R"(^the names? of the (.+) of <S> (is|are)$)", {"<S>'s {1} {2}"}},
      {R"(^the name of the (\w+(?: \w+)?) which <S> (is associated with|is a member of|plays in|is part of) is$)",
       {"<S> {2}", "The {1} <S> {2} is"}},
      {R"(^the name of the award <S> won is$)", {"<S> won the award", "The award won by <S> is"}},
      {R"(^the name of the position held by <S> is$)", {"<S> held the position of", "The position held by <S> is"}},
      {R"(^<S> follows$)", {"<S> comes after", "The predecessor of <S> is"}},
      {R"(^<S> is followed by$)", {"<S> is succeeded by", "The successor of <S> is"}},
      // ZsRE's questions.
      {R"(^what is the name of <S>'s (.+)$)", {"The name of <S>'s {1} is", "<S>'s {1} is called"}},
      {R"(^what is the name of the (\w+) where <S> is located$)", {"<S> is located in", "The {1} where <S> is located is"}},
      {R"(^what is the name of the (.+) of <S>$)", {"The {1} of <S> is called", "<S>'s {1} is called"}},
      {R"(^(?:(?:what|which) (?:was|is) the year (?:that )?<S> entered service|in what year did <S> enter service)$)",
       {"<S> entered service in", "The year <S> entered service was"}},
      {R"(^(?:what|which) (\w+(?: \w+)?) (?:was|is) responsible for <S>$)", {"The {1} responsible for <S> was"}},
      {R"(^the (\w+(?: \w+)?) responsible for <S> (is|was)(?: what| who| whom)?$)", {"The {1} responsible for <S> {2}"}},
      {R"(^(?:what|which|who) (is|was) the (.+) (of|for) <S>$)", {"The {2} {3} <S> {1}", "<S>'s {2} {1}"}},
      {R"(^(?:who|what) (is|was) <S>'s (\w+(?: \w+){0,2})$)", {"The {2} of <S> {1}"}},
      {R"(^the (.+) (of|for) <S> (is|was) (?:whom|who|what)$)", {"<S>'s {1} {3}", "The {1} {2} <S> {3}"}},
      {R"(^the (.+) (?:of|for) <S> (is|was)$)", {"<S>'s {1} {2}"}},
      {R"(^when (is|was) the (.+) (of|for) <S>$)", {"The {2} {3} <S> {1}", "<S>'s {2} {1}"}},
      {R"(^(?:which|what) (family|genus|order|class|series|group|constellation|category) does <S> belong(?: to)?$)",
       {"<S> belongs to the {1}", "<S> is a member of the {1}"}},
      {R"(^(?:which|what) (\w+) (?:is|was) <S> (?:a )?part of$)", {"<S> is part of the {1}", "The {1} that <S> is part of is"}},
      {R"(^(?:in )?(?:which|what) (state|country|city|county|province|region|constellation|place|town|district|continent|area) (is|was) <S>(?: located| situated)?(?: in)?$)",
       {"<S> {2} located in", "The {1} where <S> {2} located {2}"}},
      {R"(^(?:in |at )?(?:what|which) (city|town|place|location|country) did <S> die(?: in)?$)",
       {"<S> died in", "The {1} where <S> died is"}},
      {R"(^where did <S> die$)", {"<S> died in", "The place where <S> died is"}},
      {R"(^(?:where|(?:in )?(?:what|which) (?:city|town|place)) did <S> live when (?:he|she) died$)",
       {"At the time of death, <S> lived in", "The place where <S> lived at death is"}},
      {R"(^(?:in )?(?:what|which) (city|town|place|country) was <S> born(?: in)?$)",
       {"<S> was born in", "The {1} where <S> was born is"}},
      {R"(^where was <S> born$)", {"<S> was born in", "The place where <S> was born is"}},
      {R"(^(?:in )?(?:what|which) year was <S> (born|built|made|\w+ed)$)", {"<S> was {1} in the year", "The year <S> was {1} is"}},
      {R"(^when was <S> (born|built|made|\w+ed)$)", {"<S> was {1} in", "The date <S> was {1} is"}},
      {R"(^(?:in )?(?:what|which) (?:war|battle|war or battle|conflict) did <S> (?:participate|fight|serve|take part)(?: in)?$)",
       {"<S> took part in", "The war <S> fought in was"}},
      {R"(^(?:what|which) war was <S> in$)", {"<S> took part in", "The war <S> fought in was"}},
      {R"(^(?:what|which) (?:sports )?team does <S> play for$)", {"<S> plays for", "The team <S> plays for is"}},
      {R"(^(?:what|which) (?:sports )?team (?:is|was) <S> (?:a member of|associated with|affiliated with|part of|on)$)",
       {"<S> is a member of", "The team of <S> is"}},
      {R"(^player <S> played for which team$)", {"<S> played for", "The team of <S> is"}},
      {R"(^(?:what|which) (\w+(?: \w+)?) type is <S>$)", {"The {1} type of <S> is", "<S>'s {1} type is"}},
      {R"(^which was the (\w+(?: \w+)?) that <S> (?:had|held)$)", {"The {1} of <S> was", "<S>'s {1} was"}},
      {R"(^who (designed|developed|directed|produced|created|wrote|released|published|founded|composed|manufactured|built|discovered|invented) (?:the )?<S>$)",
       {"<S> was {1} by", "The one who {1} <S> is"}},
      {R"(^who (?:is|was) (?:the )?<S> (directed|produced|written|created|designed|developed|published|founded|composed|performed|made|released|manufactured|built) by$)",
       {"<S> was {1} by"}},
      {R"(^(?:what|which) (company|studio|architect|artist|corporation|business|label|firm|designer|person|production company|organization|team|group) (designed|developed|produced|created|published|made|released|built|manufactured|founded|distributed) <S>$)",
       {"<S> was {2} by", "The {1} that {2} <S> is"}},
      {R"(^(?:what|which) (company|studio|architect|artist|corporation|business|label|firm|designer|person|production company|organization|team|group) (?:was|is) <S> (designed|developed|produced|created|published|made|released|built|manufactured|founded|distributed) by$)",
       {"<S> was {2} by", "The {1} that {2} <S> is"}},
      {R"(^(?:who|whom) (is|was) (?:the )?<S> named (?:after|for)$)", {"<S> {1} named after", "The namesake of <S> is"}},
      {R"(^which lady (?:gave birth to <S>|<S> was born to)$)", {"<S> was born to", "The mother of <S> is"}},
      {R"(^(?:what|which) (college|university|school) did <S> (?:go to|attend)$)",
       {"<S> was educated at", "The {1} <S> attended is"}},
      {R"(^which college or university is related with <S>$)", {"<S> studied at", "The university of <S> is"}},
      {R"(^what is the university where <S> went$)", {"<S> went to university at", "The university of <S> is"}},
      {R"(^(?:what|which) (?:programming )?language (?:is|was) <S> (?:written )?in$)",
       {"<S> is written in", "The language of <S> is"}},
      {R"(^(?:what|which) (\w+) (?:is|was) <S> associated with$)",
       {"<S> is associated with the {1}", "The {1} associated with <S> is"}},
      {R"(^(?:which position was held by <S>|which was the position that <S> held)$)",
       {"<S> held the position of", "The position held by <S> was"}},
      {R"(^who (?:are|were) the (?:stars|cast members|actors) (?:of|in) (?:the film )?<S>$)", {"The cast of <S> includes"}},
  };
  return *rules;
}

const std::vector<std::regex>& CompiledRules() {
  static const auto* compiled = [] {
    auto* v = new std::vector<std::regex>;
    for (const Rule& r : Rules()) v->emplace_back(r.pattern, std::regex::ECMAScript | std::regex::icase);
    return v;
  }();
  return *compiled;
}

// `subject` occurs in `text` as a whole (not inside a longer word: "Paris" is not in "Parisian").
bool MentionsSubject(std::string_view text, std::string_view subject) {
  if (subject.empty()) return false;
  const auto word = [](char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); };
  for (size_t at = text.find(subject); at != std::string_view::npos; at = text.find(subject, at + 1)) {
    const size_t end = at + subject.size();
    if ((at == 0 || !word(text[at - 1])) && (end == text.size() || !word(text[end]))) return true;
  }
  return false;
}

}  // namespace

std::vector<std::string> RewordQuestion(std::string_view question, std::string_view subject) {
  if (subject.empty()) return {};
  // Trim, drop the question mark(s), collapse runs of spaces, mark the subject.
  std::string q(question);
  while (!q.empty() && absl::ascii_isspace(static_cast<unsigned char>(q.front()))) q.erase(q.begin());
  while (!q.empty() && (q.back() == '?' || absl::ascii_isspace(static_cast<unsigned char>(q.back())))) q.pop_back();
  const size_t at = q.find(subject);
  if (at == std::string::npos) return {};
  q.replace(at, subject.size(), "<S>");
  std::string shape;
  for (char c : q) {
    const bool space = absl::ascii_isspace(static_cast<unsigned char>(c));
    if (space && (shape.empty() || shape.back() == ' ')) continue;
    shape.push_back(space ? ' ' : c);
  }
  const std::vector<Rule>& rules = Rules();
  const std::vector<std::regex>& compiled = CompiledRules();
  for (size_t i = 0; i < rules.size(); ++i) {
    std::smatch m;
    if (!std::regex_match(shape, m, compiled[i])) continue;
    std::vector<std::string> out;
    for (const char* t : rules[i].rewordings) {
      std::string text = t;
      for (size_t g = 1; g < m.size(); ++g) text = absl::StrReplaceAll(text, {{"{" + std::to_string(g) + "}", m[g].str()}});
      out.push_back(absl::StrReplaceAll(text, {{"<S>", std::string(subject)}}));
    }
    return out;
  }
  return {};
}

std::vector<std::string> UsableParaphrases(const std::vector<std::string>& items, std::string_view question,
                                           std::string_view subject) {
  static const auto* numbered = new std::regex(R"(^\s*\d+\s*[.)]\s+(\S.*?)\s*$)");
  std::vector<std::string> out;
  std::set<std::string> seen{NormalizeAnswer(question)};
  for (const std::string& item : items) {
    std::smatch m;
    if (!std::regex_match(item, m, *numbered)) continue;
    const std::string text = m[1].str();
    if (!MentionsSubject(text, subject)) continue;
    if (text.find('[') != std::string::npos || text.size() > 200) continue;
    if (!seen.insert(NormalizeAnswer(text)).second) continue;
    out.push_back(text);
  }
  return out;
}

}  // namespace moke::bench
