#include "core/editor/held_edit.h"

#include <algorithm>

namespace moke {

namespace {
int64_t TensorBytes(const at::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

int64_t TextBytes(const std::vector<std::string>& v) {
  int64_t n = 0;
  for (const auto& s : v) n += static_cast<int64_t>(s.size());
  return n;
}
}  // namespace

FactSource FactSourceOf(const HeldEdit& h) {
  FactSource f{h.question, h.subject, h.paraphrases};
  f.paraphrases.insert(f.paraphrases.end(), h.earlier_wordings.begin(), h.earlier_wordings.end());
  return f;
}

std::vector<std::string> EarlierWordings(const std::vector<HeldEdit>& history, const std::vector<size_t>& replaced,
                                         const std::string& question) {
  std::vector<std::string> out;
  const auto add = [&](const std::string& w) {
    if (w != question && std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  };
  for (size_t h : replaced) {
    for (const std::string& w : history[h].earlier_wordings) add(w);
    add(history[h].question);
  }
  if (out.size() > kMaxEarlierWordings) out.erase(out.begin(), out.end() - kMaxEarlierWordings);
  return out;
}

int64_t HeldEditBytes(const HeldEdit& h) {
  int64_t n = TensorBytes(h.fingerprint) + static_cast<int64_t>(h.question.size() + h.answer.size() + h.subject.size()) +
              TextBytes(h.paraphrases) + TextBytes(h.earlier_wordings);
  if (h.key) {
    for (const auto& r : h.key->relations) n += TensorBytes(r.key) + TextBytes(r.words);
    for (const auto& t : h.key->name_trigrams) n += static_cast<int64_t>(t.size() * sizeof(uint32_t));
    n += static_cast<int64_t>(h.key->question_trigrams.size() * sizeof(uint32_t)) + TextBytes(h.key->names);
  }
  return n;
}

}  // namespace moke
