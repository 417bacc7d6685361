#include "core/editor/augmentation.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace moke {

namespace {

// Seeds for the self-generated augmentation prefixes (the peer's).
const char* const kPrefixSeeds[] = {"I", "You", "Because", "Yes", "Q: "};

}  // namespace

std::string ModelContinuation(const LlamaModel& model, const std::string& seed, int max_new_tokens) {
  auto ids = model.EncodePrompt(seed);
  auto gen = model.Generate(ids, max_new_tokens).tokens;
  std::vector<int64_t> all(ids.begin() + 1, ids.end());
  all.insert(all.end(), gen.begin(), gen.end());
  return model.Decode(all);
}

std::string NoiseSubject(const std::string& question) {
  std::vector<std::string> words = absl::StrSplit(question, ' ', absl::SkipEmpty());
  std::string best, cur;
  size_t best_n = 0, cur_n = 0;
  for (size_t i = 1; i < words.size(); ++i) {
    std::string w = words[i];
    while (!w.empty() && (w.back() == '?' || w.back() == ',' || w.back() == '.')) w.pop_back();
    const bool cap = !w.empty() && ((w[0] >= 'A' && w[0] <= 'Z') || (w[0] >= '0' && w[0] <= '9'));
    if (cap) {
      cur = cur.empty() ? w : cur + " " + w;
      ++cur_n;
      if (cur_n > best_n) {
        best = cur;
        best_n = cur_n;
      }
    } else {
      cur.clear();
      cur_n = 0;
    }
  }
  return best;
}

Augmenter Augmenter::Create(std::shared_ptr<const LlamaModel> model, int num_prefixes) {
  Augmenter aug;
  for (int i = 0; i < 10 && static_cast<int>(aug.prefixes_.size()) < num_prefixes; ++i) {
    Prefix p;
    p.text = ModelContinuation(*model, kPrefixSeeds[i % 5], i < 5 ? 5 : 10);
    p.prompt_tokens = static_cast<int64_t>(model->EncodePrompt(p.text).size());
    aug.longest_prefix_tokens_ =
        std::max<int64_t>(aug.longest_prefix_tokens_, model->EncodeContinuation(p.text).size() + 1);
    aug.prefixes_.push_back(std::move(p));
  }
  aug.model_ = std::move(model);
  return aug;
}

std::vector<TrainingRow> Augmenter::Rows(const std::string& question, const std::vector<int64_t>& answer,
                                         bool augment, std::mt19937_64& rng) const {
  std::vector<TrainingRow> rows;
  auto add = [&](const Prefix* prefix, const std::string& q) {
    TrainingRow r;
    r.ids = model_->EncodePrompt(prefix ? prefix->text + " " + q : q);
    r.q_begin = std::min<int64_t>(prefix ? prefix->prompt_tokens : 1, static_cast<int64_t>(r.ids.size()) - 1);
    r.q_end = static_cast<int64_t>(r.ids.size());
    r.answer_begin = r.q_end;
    r.ids.insert(r.ids.end(), answer.begin(), answer.end());
    rows.push_back(std::move(r));
  };
  add(nullptr, question);
  if (!augment) return rows;
  for (const Prefix& p : prefixes_) add(&p, question);
  // Subject noise (paper): delete a middle word of the subject, or add a title, at random.
  const std::string subject = NoiseSubject(question);
  if (!subject.empty()) {
    std::vector<std::string> words = absl::StrSplit(subject, ' ');
    std::string noisy;
    std::uniform_int_distribution<int> coin(0, 1);
    if (words.size() >= 3 && coin(rng) == 0) {
      std::uniform_int_distribution<size_t> pick(1, words.size() - 2);
      words.erase(words.begin() + static_cast<std::ptrdiff_t>(pick(rng)));
      noisy = absl::StrJoin(words, " ");
    } else {
      noisy = "Dr. " + subject;
    }
    std::string q = question;
    if (auto pos = q.find(subject); pos != std::string::npos) {
      q.replace(pos, subject.size(), noisy);
      add(nullptr, q);
    }
  }
  return rows;
}

}  // namespace moke
