#include "core/editor/held_edit.h"

namespace moke {

namespace {
int64_t TensorBytes(const at::Tensor& t) { return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; }

int64_t TextBytes(const std::vector<std::string>& v) {
  int64_t n = 0;
  for (const auto& s : v) n += static_cast<int64_t>(s.size());
  return n;
}
}  // namespace

int64_t HeldEditBytes(const HeldEdit& h) {
  int64_t n = TensorBytes(h.fingerprint) + static_cast<int64_t>(h.question.size() + h.answer.size() + h.subject.size()) +
              TextBytes(h.paraphrases);
  if (h.key) {
    for (const auto& r : h.key->relations) n += TensorBytes(r.key) + TextBytes(r.words);
    for (const auto& t : h.key->name_trigrams) n += static_cast<int64_t>(t.size() * sizeof(uint32_t));
    n += static_cast<int64_t>(h.key->question_trigrams.size() * sizeof(uint32_t)) + TextBytes(h.key->names);
  }
  return n;
}

}  // namespace moke
