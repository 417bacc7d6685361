#include "core/editor/subject.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string_view>

namespace moke {

namespace {

bool IsAsciiAlnum(unsigned char c) { return std::isalnum(c) != 0; }

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

}  // namespace

std::string NormalizeForMatch(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c >= 0x80) {
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

TextSpan AlignToTemplate(const std::string& question, const std::vector<std::string>& relation) {
  const auto hole = std::find(relation.begin(), relation.end(), "<s>");
  if (hole == relation.end()) return {};
  const size_t pre = static_cast<size_t>(hole - relation.begin());
  const size_t suf = relation.size() - pre - 1;
  std::vector<TextSpan> words;
  std::vector<std::string> norm;
  for (const TextSpan& w : Words(question)) {
    std::string n = NormalizeForMatch(question.substr(w.begin, w.end - w.begin));
    if (n.empty()) continue;
    words.push_back(w);
    norm.push_back(std::move(n));
  }
  if (words.size() <= pre + suf) return {};
  for (size_t i = 0; i < pre; ++i) {
    if (norm[i] != relation[i]) return {};
  }
  for (size_t i = 0; i < suf; ++i) {
    if (norm[words.size() - suf + i] != relation[pre + 1 + i]) return {};
  }
  TextSpan span = Trim(question, {words[pre].begin, words[words.size() - suf - 1].end, 0});
  return span;
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

std::set<std::string> RelationWords(const std::vector<std::string>& t, size_t begin, size_t end) {
  std::set<std::string> out;
  for (size_t i = begin; i < end; ++i) {
    if (IsRelationWord(t[i])) out.insert(Stem(t[i]));
  }
  return out;
}

bool Passive(const std::vector<std::string>& t) {
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    const std::string& w = t[i];
    const bool participle = w.size() > 2 && (w.compare(w.size() - 2, 2, "ed") == 0 || w.compare(w.size() - 2, 2, "en") == 0);
    if (participle && t[i + 1] == "by") return true;
  }
  return false;
}

bool Intersect(const std::set<std::string>& a, const std::set<std::string>& b) {
  for (const auto& x : a) {
    if (b.count(x)) return true;
  }
  return false;
}

}  // namespace

RelationVerdict CompareRelations(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  if (Passive(a) != Passive(b)) return RelationVerdict::kDifferent;
  const std::set<std::string> ca = RelationWords(a, 0, a.size()), cb = RelationWords(b, 0, b.size());
  if (ca.empty() || cb.empty()) {
    std::set<std::string> qa, qb;
    for (const auto& w : a) if (QuestionWords().count(w)) qa.insert(w);
    for (const auto& w : b) if (QuestionWords().count(w)) qb.insert(w);
    return Intersect(qa, qb) ? RelationVerdict::kBare : RelationVerdict::kDifferent;
  }
  // One block of relation words put in place of another, the rest equal: another relation.
  size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ++pre;
  size_t suf = 0;
  while (suf < a.size() - pre && suf < b.size() - pre && a[a.size() - 1 - suf] == b[b.size() - 1 - suf]) ++suf;
  const std::set<std::string> ma = RelationWords(a, pre, a.size() - suf), mb = RelationWords(b, pre, b.size() - suf);
  if (!ma.empty() && !mb.empty() && !Intersect(ma, mb)) return RelationVerdict::kDifferent;
  return Intersect(ca, cb) ? RelationVerdict::kShared : RelationVerdict::kDifferent;
}

}  // namespace moke
