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

double Dice(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
  if (a.empty() || b.empty()) return 0;
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
  return 2.0 * static_cast<double>(common) / static_cast<double>(a.size() + b.size());
}

TextSpan FindSubject(const std::string& question, const std::string& subject) {
  TextSpan best;
  const std::vector<uint32_t> want = Trigrams(subject);
  if (want.empty()) return best;
  const std::vector<TextSpan> words = Words(question);
  const size_t n = std::max<size_t>(1, Words(subject).size()) + 1;
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

std::string RelationTemplate(const std::string& question, const TextSpan& subject) {
  std::string out;
  auto add_words = [&](const std::string& text) {
    for (const TextSpan& w : Words(text)) {
      const std::string n = NormalizeForMatch(text.substr(w.begin, w.end - w.begin));
      if (n.empty()) continue;
      if (!out.empty()) out.push_back(' ');
      out += n;
    }
  };
  if (subject.empty()) {
    add_words(question);
    return out;
  }
  add_words(question.substr(0, subject.begin));
  if (!out.empty()) out.push_back(' ');
  out += "<s>";
  add_words(question.substr(subject.end));
  return out;
}

}  // namespace moke
