#include "core/editor/subject.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "core/editor/country_names.h"

namespace moke {

namespace {

bool IsAsciiAlnum(unsigned char c) { return std::isalnum(c) != 0; }

bool Subset(const std::set<std::string>& a, const std::set<std::string>& b) {
  return std::includes(b.begin(), b.end(), a.begin(), a.end());
}

// The code point of the UTF-8 character at text[i] (not ASCII) and its length in bytes; {0, 0} when the
// bytes there are not a well-formed lead and continuation.
std::pair<uint32_t, size_t> DecodeAt(const std::string& text, size_t i) {
  const unsigned char c = static_cast<unsigned char>(text[i]);
  uint32_t cp = 0;
  size_t n = 0;
  if ((c & 0xE0) == 0xC0) { cp = c & 0x1Fu; n = 1; }
  else if ((c & 0xF0) == 0xE0) { cp = c & 0x0Fu; n = 2; }
  else if ((c & 0xF8) == 0xF0) { cp = c & 0x07u; n = 3; }
  else return {0, 0};
  for (size_t k = 1; k <= n; ++k) {
    if (i + k >= text.size()) return {0, 0};
    const unsigned char b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return {0, 0};
    cp = (cp << 6) | (b & 0x3Fu);
  }
  return {cp, n + 1};
}

// Whether the UTF-8 character at text[i] (not ASCII) is a letter of a script, not punctuation or a symbol:
// Latin letters with marks (U+00C0..U+024F but x and /), Greek to Ethiopic and the rest below U+2000,
// kana, CJK and Hangul (U+3040..U+D7FF). Dashes, quotes and symbols (U+2000..U+303F and others) are not.
bool IsLetterOutsideAscii(const std::string& text, size_t i) {
  const auto [cp, length] = DecodeAt(text, i);
  if (length == 0) return false;
  if (cp >= 0xC0 && cp <= 0x24F) return cp != 0xD7 && cp != 0xF7;
  if (cp >= 0x370 && cp < 0x2000) return true;
  return cp >= 0x3040 && cp <= 0xD7FF;
}

// Words that stand before a name without being part of it (normalised).
const std::set<std::string>& Titles() {
  static const std::set<std::string> t = {"dr", "mr", "mrs", "ms", "sir", "dame", "lord", "lady", "president",
                                          "king", "queen", "prince", "princess", "saint", "st", "pope"};
  return t;
}

// Words of `s` as byte ranges (split on ASCII whitespace).
std::vector<TextSpan> Words(const std::string& s) {
  std::vector<TextSpan> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    const size_t b = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i > b) out.push_back({b, i, 0});
  }
  return out;
}

// A word without trailing punctuation or a possessive "'s" / "’s".
TextSpan Trim(const std::string& s, TextSpan w) {
  auto ends_with = [&](std::string_view suffix) {
    return w.end - w.begin > suffix.size() && std::string_view(s).substr(w.end - suffix.size(), suffix.size()) == suffix;
  };
  for (bool changed = true; changed && !w.empty();) {
    changed = true;
    if (ends_with("'s")) {
      w.end -= 2;
    } else if (ends_with("\xE2\x80\x99s")) {
      w.end -= 4;
    } else if (const unsigned char c = static_cast<unsigned char>(s[w.end - 1]); c < 0x80 && !IsAsciiAlnum(c) && c != ')') {
      --w.end;
    } else {
      changed = false;
    }
  }
  while (!w.empty() && s[w.begin] == '"') ++w.begin;
  return w;
}

bool Capitalised(const std::string& s, const TextSpan& w) {
  if (w.empty()) return false;
  const unsigned char c = static_cast<unsigned char>(s[w.begin]);
  return std::isupper(c) || std::isdigit(c) || c >= 0x80;
}

const std::set<std::string>& Joiners() {
  static const std::set<std::string> j = {"of", "the", "de", "del", "della", "da", "di", "du", "des", "la", "le",
                                          "von", "van", "der", "den", "and", "&", "y", "al", "el", "bin", "ibn"};
  return j;
}

// Capitalised words that start a question without naming anything.
const std::set<std::string>& Openers() {
  static const std::set<std::string> o = {
      "the", "a", "an", "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are",
      "was", "were", "did", "does", "do", "in", "on", "at", "of", "for", "to", "from", "by", "with", "name",
      "tell", "can", "could", "would", "will", "has", "have", "had", "this", "that", "these", "those"};
  return o;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The Latin letter without its marks, lower case, of U+00C0 + i for i in [0, 192) (Latin-1 Supplement and
// Latin Extended-A); nullptr for the two signs among them (x, /).
const char* FoldLatin(uint32_t i) {
  static const char* const kFold[192] = {
      "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",  // U+00C0
      "d", "n", "o", "o", "o", "o", "o", nullptr, "o", "u", "u", "u", "u", "y", "th", "ss",
      "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",  // U+00E0
      "d", "n", "o", "o", "o", "o", "o", nullptr, "o", "u", "u", "u", "u", "y", "th", "y",
      "a", "a", "a", "a", "a", "a", "c", "c", "c", "c", "c", "c", "c", "c", "d", "d",  // U+0100
      "d", "d", "e", "e", "e", "e", "e", "e", "e", "e", "e", "e", "g", "g", "g", "g",
      "g", "g", "g", "g", "h", "h", "h", "h", "i", "i", "i", "i", "i", "i", "i", "i",  // U+0120
      "i", "i", "ij", "ij", "j", "j", "k", "k", "k", "l", "l", "l", "l", "l", "l", "l",
      "l", "l", "l", "n", "n", "n", "n", "n", "n", "n", "n", "n", "o", "o", "o", "o",  // U+0140
      "o", "o", "oe", "oe", "r", "r", "r", "r", "r", "r", "s", "s", "s", "s", "s", "s",
      "s", "s", "t", "t", "t", "t", "t", "t", "u", "u", "u", "u", "u", "u", "u", "u",  // U+0160
      "u", "u", "u", "u", "w", "w", "y", "y", "y", "z", "z", "z", "z", "z", "z", "s"};
  return i < 192 ? kFold[i] : nullptr;
}

}  // namespace

std::string NormalizeForMatch(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size(); ++k) {
    const unsigned char c = static_cast<unsigned char>(s[k]);
    if (c >= 0x80) {
      // A Latin letter with marks (U+00C0..U+017F) is its base letter: "Räikkönen" matches "Raikkonen".
      // Other bytes are kept as they are.
      const auto [cp, length] = DecodeAt(s, k);
      if (length > 0 && cp >= 0xC0) {
        if (const char* base = FoldLatin(cp - 0xC0)) {
          out += base;
          k += length - 1;
          continue;
        }
      }
      out.push_back(static_cast<char>(c));
    } else if (IsAsciiAlnum(c)) {
      out.push_back(static_cast<char>(std::tolower(c)));
    }
  }
  return out;
}

std::vector<uint32_t> Trigrams(const std::string& s) {
  const std::string n = NormalizeForMatch(s);
  std::vector<uint32_t> out;
  auto code = [&](size_t i, size_t len) {
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = (v << 8) | (k < len ? static_cast<unsigned char>(n[i + k]) : 0u);
    return v;
  };
  if (n.empty()) return out;
  if (n.size() < 3) {
    out.push_back(code(0, n.size()));
    return out;
  }
  for (size_t i = 0; i + 3 <= n.size(); ++i) out.push_back(code(i, 3));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

size_t CommonTrigrams(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  size_t i = 0, j = 0, common = 0;
  while (i < a.size() && j < b.size()) {
    if (a[i] == b[j]) {
      ++common;
      ++i;
      ++j;
    } else if (a[i] < b[j]) {
      ++i;
    } else {
      ++j;
    }
  }
  return common;
}

double Dice(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  if (a.empty() || b.empty()) return 0;
  return 2.0 * static_cast<double>(CommonTrigrams(a, b)) / static_cast<double>(a.size() + b.size());
}

size_t WordCount(const std::string& s) { return Words(s).size(); }

bool CutsAName(const std::string& text, const TextSpan& span) {
  if (span.empty()) return false;
  const auto starts_name = [&](const TextSpan& w) {
    size_t i = w.begin;
    while (i < w.end && (text[i] == '"' || text[i] == '(' || text[i] == '\'')) ++i;
    if (i >= w.end) return false;
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) return std::isupper(c) || std::isdigit(c);
    return IsLetterOutsideAscii(text, i);
  };
  const std::vector<TextSpan> words = Words(text);
  for (const TextSpan& w : words) {
    if (w.begin >= span.end) {  // the first word after the span
      if (starts_name(w)) return true;
      break;
    }
  }
  for (size_t k = words.size(); k-- > 1;) {  // the word before it, unless it opens the text
    if (words[k].end <= span.begin) {
      return starts_name(words[k]) && !Titles().count(NormalizeForMatch(text.substr(words[k].begin, words[k].end - words[k].begin)));
    }
  }
  return false;
}

namespace {

// The usual full forms of a given name ("tommy" -> thomas; "ted" -> edward, theodore); a name that is no
// short form is its own.
std::vector<std::string> FullGivenNames(const std::string& w) {
  static const std::map<std::string, std::vector<std::string>> m = [] {
    const std::vector<std::vector<std::string>> groups = {
        {"thomas", "tom", "tommy"},
        {"robert", "rob", "robbie", "bob", "bobby", "bert"},
        {"william", "will", "willie", "bill", "billy", "liam"},
        {"richard", "rick", "ricky", "dick", "rich", "richie"},
        {"james", "jim", "jimmy", "jamie"},
        {"john", "johnny", "jack"},
        {"michael", "mike", "mikey", "mick", "mickey"},
        {"edward", "ed", "eddie", "ted", "teddy", "ned"},
        {"theodore", "theo", "ted", "teddy"},
        {"anthony", "tony"},
        {"charles", "charlie", "chuck"},
        {"joseph", "joe", "joey"},
        {"margaret", "maggie", "peggy", "meg"},
        {"elizabeth", "liz", "lizzie", "beth", "betty", "eliza"},
        {"katherine", "catherine", "kathryn", "kate", "katey", "katie", "kathy", "cathy", "kat", "cat"},
        {"alexander", "alex", "sasha"},
        {"daniel", "dan", "danny"},
        {"david", "dave", "davey"},
        {"christopher", "chris"},
        {"nicholas", "nick", "nicky"},
        {"patricia", "pat", "patty", "trish"},
        {"rebecca", "becky"},
        {"susan", "sue", "suzy"},
        {"gabriella", "gabriela", "gabi", "gabby"},
    };
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& g : groups)
      for (const std::string& w : g) out[w].push_back(g[0]);
    return out;
  }();
  auto it = m.find(w);
  return it == m.end() ? std::vector<std::string>{w} : it->second;
}

bool HasDigit(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

}  // namespace

bool NameVariant(const std::string& name, const std::string& text) {
  std::vector<std::string> nw, tw;
  for (const TextSpan& w : Words(name))
    if (std::string n = NormalizeForMatch(name.substr(w.begin, w.end - w.begin)); !n.empty()) nw.push_back(n);
  for (const TextSpan& w : Words(text))
    if (std::string n = NormalizeForMatch(text.substr(w.begin, w.end - w.begin)); !n.empty()) tw.push_back(n);
  if (nw.empty() || tw.empty()) return false;
  const std::set<std::string> ns(nw.begin(), nw.end()), ts(tw.begin(), tw.end());
  // Three words or more of the name, in any order, with its number left out: "coup d'état in Myanmar" for
  // "2021 Myanmar coup d'état" ("in", "of", "the" aside).
  static const std::set<std::string> kGlue = {"in", "of", "the", "a", "an", "and", "de"};
  std::set<std::string> tc;
  for (const std::string& w : tw)
    if (!kGlue.count(w)) tc.insert(w);
  if (tc.size() >= 3 && !HasDigit(text) && Subset(tc, ns)) return true;
  if (!SameNumbers(name, text)) return false;
  // A country's other names and codes ("UA" for "Ukraine", "Republic of India" for "India").
  if (CountryNames::System().Same(nw, tw)) return true;
  // Initials: capitals standing for the name's words ("RFK", "R.F.K.").
  std::string caps;
  bool only_caps = true;
  for (unsigned char c : text) {
    if (std::isupper(c)) caps.push_back(static_cast<char>(c));
    else if (c != '.' && !std::isspace(c)) only_caps = false;
  }
  if (only_caps && caps.size() >= 2 && caps.size() == nw.size()) {
    bool initials = true;
    for (size_t i = 0; i < nw.size(); ++i) initials = initials && std::toupper(static_cast<unsigned char>(nw[i][0])) == caps[i];
    if (initials) return true;
  }
  // The name before a comma: "Prince Harry" for "Prince Harry, Duke of Sussex".
  if (const size_t comma = name.find(','); comma != std::string::npos && tw.size() >= 2 &&
      NormalizeForMatch(name.substr(0, comma)) == NormalizeForMatch(text))
    return true;
  // The same last word (a family name, the head of a name), and the rest one name's words within the
  // other's ("Ida" / "Hurricane Ida"), or a given name that is the other's by its usual short form ("Tommy"
  // / "Thomas"), starts alike (three letters: "Steve" / "Stephen"), is the other's initial ("R. Nixon") or
  // a title ("President Nixon").
  if (nw.back() != tw.back() || nw.back().size() < 3) return false;
  if (Subset(ns, ts) || Subset(ts, ns)) return true;
  if (nw.size() < 2 || tw.size() < 2) return false;
  const std::string &a = nw[0], &b = tw[0];
  if (Titles().count(a) || Titles().count(b)) return true;
  for (const std::string& x : FullGivenNames(a))
    for (const std::string& y : FullGivenNames(b))
      if (x == y) return true;
  if ((a.size() == 1 && b[0] == a[0]) || (b.size() == 1 && a[0] == b[0])) return true;
  return a.size() >= 3 && b.size() >= 3 && a.compare(0, 3, b, 0, 3) == 0;
}

bool SameNumbers(const std::string& a, const std::string& b) {
  auto numbers = [](const std::string& s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  return numbers(a) == numbers(b);
}

TextSpan FindSubject(const std::string& question, const std::string& subject) {
  return FindSubject(question, Trigrams(subject), WordCount(subject));
}

TextSpan FindSubject(const std::string& question, const std::vector<uint32_t>& want, size_t subject_words) {
  TextSpan best;
  if (want.empty()) return best;
  const std::vector<TextSpan> words = Words(question);
  const size_t n = std::max<size_t>(1, subject_words) + 1;
  for (size_t i = 0; i < words.size(); ++i) {
    for (size_t j = i; j < words.size() && j < i + n; ++j) {
      TextSpan span = Trim(question, {words[i].begin, words[j].end, 0});
      if (span.empty()) continue;
      span.score = Dice(want, Trigrams(question.substr(span.begin, span.end - span.begin)));
      if (span.score > best.score) best = span;
    }
  }
  return best;
}

std::string GuessSubject(const std::string& question) {
  const std::vector<TextSpan> words = Words(question);
  TextSpan best;
  size_t best_len = 0;
  size_t i = 0;
  while (i < words.size()) {
    const TextSpan w = Trim(question, words[i]);
    const std::string lw = Lower(question.substr(w.begin, w.end - w.begin));
    if (!Capitalised(question, w) || (i == 0 && Openers().count(lw))) {
      ++i;
      continue;
    }
    // A run: capitalised words, with joiners between two of them.
    size_t j = i, last = i;
    while (j + 1 < words.size()) {
      const TextSpan next = Trim(question, words[j + 1]);
      const std::string ln = Lower(question.substr(next.begin, next.end - next.begin));
      if (Capitalised(question, next)) {
        last = j = j + 1;
      } else if (Joiners().count(ln) && j + 2 < words.size() && Capitalised(question, Trim(question, words[j + 2]))) {
        j = j + 1;
      } else {
        break;
      }
      // Stop at a word with its own end punctuation ("Paris, France" is two names at most).
      if (Trim(question, words[last]).end != words[last].end) break;
    }
    const TextSpan run{Trim(question, words[i]).begin, Trim(question, words[last]).end, 0};
    const size_t len = run.end - run.begin;
    if (len > best_len) {
      best = run;
      best_len = len;
    }
    i = last + 1;
  }
  return best.empty() ? std::string() : question.substr(best.begin, best.end - best.begin);
}

std::vector<std::string> TemplateWords(const std::string& question, const TextSpan& subject) {
  std::vector<std::string> out;
  auto add_words = [&](const std::string& text) {
    for (const TextSpan& w : Words(text)) {
      std::string n = NormalizeForMatch(text.substr(w.begin, w.end - w.begin));
      if (!n.empty()) out.push_back(std::move(n));
    }
  };
  if (subject.empty()) {
    add_words(question);
    return out;
  }
  add_words(question.substr(0, subject.begin));
  out.push_back("<s>");
  size_t rest = subject.end;
  // A possessive belongs to the subject ("Pavel Bure's position" -> "<s> position").
  for (std::string_view pos : {std::string_view("'s"), std::string_view("\xE2\x80\x99s")}) {
    if (question.compare(rest, pos.size(), pos) == 0) rest += pos.size();
  }
  add_words(question.substr(rest));
  return out;
}

std::string RelationTemplate(const std::string& question, const TextSpan& subject) {
  std::string out;
  for (const std::string& w : TemplateWords(question, subject)) {
    if (!out.empty()) out.push_back(' ');
    out += w;
  }
  return out;
}

PromptWords WordsOf(const std::string& question) {
  PromptWords out;
  for (const TextSpan& w : Words(question)) {
    std::string n = NormalizeForMatch(question.substr(w.begin, w.end - w.begin));
    if (n.empty()) continue;
    out.spans.push_back(w);
    out.norm.push_back(std::move(n));
  }
  return out;
}

TextSpan AlignToTemplate(const std::string& question, const std::vector<std::string>& relation) {
  return AlignToTemplate(question, WordsOf(question), relation);
}

TextSpan AlignToTemplate(const std::string& question, const PromptWords& words,
                         const std::vector<std::string>& relation) {
  const auto hole = std::find(relation.begin(), relation.end(), "<s>");
  if (hole == relation.end()) return {};
  const size_t pre = static_cast<size_t>(hole - relation.begin());
  const size_t suf = relation.size() - pre - 1;
  const std::vector<std::string>& norm = words.norm;
  if (norm.size() <= pre + suf) return {};
  for (size_t i = 0; i < pre; ++i) {
    if (norm[i] != relation[i]) return {};
  }
  for (size_t i = 0; i < suf; ++i) {
    if (norm[norm.size() - suf + i] != relation[pre + 1 + i]) return {};
  }
  return Trim(question, {words.spans[pre].begin, words.spans[norm.size() - suf - 1].end, 0});
}

namespace {

const std::set<std::string>& RelationStopWords() {
  static const std::set<std::string> s = {
      "the", "a", "an", "of", "is", "was", "are", "were", "be", "been", "being", "in", "on", "at", "to", "for",
      "by", "with", "from", "as", "does", "do", "did", "that", "this", "these", "those", "it", "its", "s", "he",
      "she", "they", "his", "her", "their", "name", "names", "has", "have", "had", "there", "or", "and", "into",
      "onto", "about", "<s>"};
  return s;
}

const std::set<std::string>& QuestionWords() {
  static const std::set<std::string> q = {"who", "whom", "whose", "when", "where", "which", "what", "how", "why"};
  return q;
}

std::string Stem(const std::string& w) {
  for (std::string_view suffix : {"ing", "ed", "es", "s"}) {
    if (w.size() > suffix.size() + 3 && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return w.substr(0, w.size() - suffix.size());
    }
  }
  return w;
}

bool IsRelationWord(const std::string& w) { return !RelationStopWords().count(w) && !QuestionWords().count(w); }

// Words that name the same relation in knowledge-base questions, each mapped to its group's first word
// ("Who was the dad of X?" / "Who's the father of X?"; "What company made X?" / "X's manufacturer was
// who?"; "What city ..." / "What town ..."). A group holds only words of one relation and one direction
// (father and mother, birth and death, founder and inception stay apart), so a rewording that swaps a word
// for its synonym keeps the relation, and one that swaps it for another group's word still changes it.
const std::map<std::string, std::string>& Synonyms() {
  static const std::map<std::string, std::string> m = [] {
    const std::vector<std::vector<std::string>> groups = {
        {"father", "dad", "daddy", "papa"},
        {"mother", "mom", "mum", "mommy", "mama"},
        {"spouse", "wife", "husband", "married", "marry", "wed", "wedded"},
        {"city", "town"},
        {"country", "nation", "land", "nationality", "citizenship", "citizen"},
        {"birth", "born", "birthplace", "birthdate", "birthday"},
        {"death", "die", "died", "dies", "dead", "dying"},
        {"make", "made", "makes", "making", "maker", "manufacture", "manufactured", "manufactures", "manufacturer",
         "manufacturing", "build", "built", "builds", "builder", "create", "created", "creates", "creator"},
        {"company", "corporation", "firm", "business", "enterprise"},
        {"inception", "launch", "launched", "founded", "foundation", "establish", "established", "establishment",
         "start", "started", "begin", "began", "begun", "formed", "formation", "introduced", "introduction"},
        {"voice", "vocal"},
        {"type", "sort", "kind"},
        {"film", "movie"},
        {"star", "starred", "starring", "stars"},
        {"author", "writer", "wrote", "write", "written", "writes"},
        {"director", "directed", "direct", "directs"},
        {"composer", "composed", "compose", "composes"},
        {"publisher", "published", "publish", "publishes", "publication"},
        {"place", "location", "located", "locate"},
        {"occupation", "job", "profession", "career"},
        {"team", "club"},
        {"educate", "educated", "education", "attend", "attended", "attends", "studied", "study", "alma", "school",
         "university", "college"},
        {"religion", "faith", "religious"},
    };
    std::map<std::string, std::string> out;
    for (const auto& g : groups)
      for (const std::string& w : g) out.emplace(w, g[0]);
    return out;
  }();
  return m;
}

// A relation word as compared: its synonym group, else its stem.
std::string RelationWord(const std::string& w) {
  if (auto it = Synonyms().find(w); it != Synonyms().end()) return it->second;
  return Stem(w);
}

// The relation words of t[begin, end): as synonym groups (`synonyms`), or as stems only.
std::set<std::string> RelationWords(const std::vector<std::string>& t, size_t begin, size_t end, bool synonyms = true) {
  std::set<std::string> out;
  for (size_t i = begin; i < end; ++i) {
    if (IsRelationWord(t[i])) out.insert(synonyms ? RelationWord(t[i]) : Stem(t[i]));
  }
  return out;
}



// The index of a passive participle followed by "by" ("followed by"), or -1.
int64_t PassiveAt(const std::vector<std::string>& t) {
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    const std::string& w = t[i];
    const bool participle = w.size() > 2 && (w.compare(w.size() - 2, 2, "ed") == 0 || w.compare(w.size() - 2, 2, "en") == 0);
    if (participle && t[i + 1] == "by") return static_cast<int64_t>(i);
  }
  return -1;
}

// Whether the subject acts in the relation (it follows, it plays) rather than undergoes it (it is followed,
// made, the mother of): in a passive, the subject stands before the participle; in an active template, a
// verb of the present or past ("follows", "played") comes right after it.
bool SubjectActs(const std::vector<std::string>& t) {
  const auto hole = std::find(t.begin(), t.end(), "<s>");
  if (hole == t.end()) return false;
  const int64_t s = hole - t.begin();
  if (const int64_t p = PassiveAt(t); p >= 0) return s > p;
  if (hole + 1 == t.end()) return false;
  const std::string& next = *(hole + 1);
  if (!IsRelationWord(next) || next.size() < 4) return false;
  return next.back() == 's' || next.compare(next.size() - 2, 2, "ed") == 0;
}

bool Intersect(const std::set<std::string>& a, const std::set<std::string>& b) {
  for (const auto& x : a) {
    if (b.count(x)) return true;
  }
  return false;
}

}  // namespace

RelationVerdict CompareRelations(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  // One passive and the other not: the same relation only if the subject plays the same part in both
  // ("X is followed by" / "X follows" differ; "Which company was X made by?" / "What company made X?" do not).
  if ((PassiveAt(a) >= 0) != (PassiveAt(b) >= 0) && SubjectActs(a) != SubjectActs(b)) return RelationVerdict::kDifferent;
  const std::set<std::string> ca = RelationWords(a, 0, a.size()), cb = RelationWords(b, 0, b.size());
  if (ca.empty() || cb.empty()) {
    std::set<std::string> qa, qb;
    for (const auto& w : a) if (QuestionWords().count(w)) qa.insert(w);
    for (const auto& w : b) if (QuestionWords().count(w)) qb.insert(w);
    return Intersect(qa, qb) ? RelationVerdict::kBare : RelationVerdict::kDifferent;
  }
  // One block of relation words put in place of another where a noun of the relation stands (after "of",
  // an article, "which" or "what"), the rest equal: another relation ("the place of birth" / "the location
  // of death", "the religion which <s> is associated with" / "the country which ..."), unless one block's
  // words are all synonyms of the other's ("dad" / "father", "date of birth" / "born"). A verb put in
  // place of another ("<s> occurred on" / "<s> came to", "did <s> participate in" / "was <s> taking part
  // in") is a rewording: the shared words and the activation keys decide.
  size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
  size_t suf = 0;
  while (suf < a.size() - pre && suf < b.size() - pre && a[a.size() - 1 - suf] == b[b.size() - 1 - suf]) ++suf;
  static const std::set<std::string> kNounStarts = {"of", "the", "a", "an", "which", "what", "whose"};
  const bool noun_block = pre > 0 && kNounStarts.count(a[pre - 1]);
  const std::set<std::string> ra = RelationWords(a, pre, a.size() - suf, false),
                              rb = RelationWords(b, pre, b.size() - suf, false);
  if (noun_block && !ra.empty() && !rb.empty() && !Intersect(ra, rb)) {
    const std::set<std::string> ma = RelationWords(a, pre, a.size() - suf), mb = RelationWords(b, pre, b.size() - suf);
    if (!Subset(ma, mb) && !Subset(mb, ma)) return RelationVerdict::kDifferent;
  }
  return Intersect(ca, cb) ? RelationVerdict::kShared : RelationVerdict::kDifferent;
}

}  // namespace moke
