#include "core/editor/unrelated_pool.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/editor/activations.h"
#include "core/editor/augmentation.h"

namespace moke {

namespace {

// Seeds for the model's own unrelated prompts.
const char* const kUnrelatedSeeds[] = {"The", "She", "What", "Where", "Who", "When", "How", "One day"};
constexpr int kUnrelatedTokens = 12;

}  // namespace

UnrelatedPool UnrelatedPool::Create(std::shared_ptr<const LlamaModel> model, int64_t layer) {
  UnrelatedPool pool;
  pool.model_ = std::move(model);
  pool.layer_ = layer;
  for (const char* seed : kUnrelatedSeeds) {
    pool.entries_.push_back(pool.Make(ModelContinuation(*pool.model_, seed, kUnrelatedTokens)));
  }
  pool.generated_ = pool.entries_.size();
  return pool;
}

UnrelatedPool::Entry UnrelatedPool::Make(const std::string& text) const {
  Entry e;
  e.text = text;
  e.a = ActivationsOf(*model_, layer_, text).a;
  e.fp = Fingerprint(e.a);
  return e;
}

UnrelatedPool::Entry UnrelatedPool::Get(const std::string& text) const {
  for (size_t i = generated_; i < entries_.size(); ++i) {
    if (entries_[i].text == text) return entries_[i];
  }
  return Make(text);
}

void UnrelatedPool::AddSupplied(Entry entry) {
  for (size_t i = generated_; i < entries_.size(); ++i) {
    if (entries_[i].text == entry.text) return;
  }
  if (entries_.size() - generated_ < kMaxSupplied) {
    entries_.push_back(std::move(entry));
  } else {
    entries_[generated_ + next_supplied_] = std::move(entry);
    next_supplied_ = (next_supplied_ + 1) % kMaxSupplied;
  }
}

std::vector<at::Tensor> UnrelatedPool::Sample(size_t n, std::mt19937_64& rng) const {
  std::vector<size_t> idx(entries_.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), rng);
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < idx.size() && i < n; ++i) out.push_back(entries_[idx[i]].a);
  return out;
}

at::Tensor UnrelatedPool::Fingerprints() const {
  std::vector<at::Tensor> fps;
  for (const auto& e : entries_) fps.push_back(e.fp);
  return at::stack(fps);
}

std::vector<std::string> UnrelatedPool::supplied() const {
  std::vector<std::string> out;
  for (size_t i = generated_; i < entries_.size(); ++i) out.push_back(entries_[i].text);
  return out;
}

void UnrelatedPool::RestoreSupplied(const std::vector<std::string>& texts, size_t next) {
  std::vector<Entry> entries(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(generated_));
  for (const auto& t : texts) entries.push_back(Make(t));
  entries_ = std::move(entries);
  next_supplied_ = next;
}

}  // namespace moke
